//! Durations and times on the command line (issue 15, item 13): a negative or overflowing value
//! of any duration or time flag is a usage error naming the flag and the value — never a panic
//! (before, `-1d` spans, huge `--since`, `--start-time` and `--flush-interval-secs` values
//! panicked on a negative `Duration` or an arithmetic overflow).
//! Every command here fails before it would contact a server (none listens on port 9).

use std::process::Command;

const NO_SERVER: &str = "http://127.0.0.1:9";

/// Runs `kinsight ARGS` and returns (exit code, stderr).
fn kinsight(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kinsight"))
        .args(args)
        .env_remove("KINSIGHT_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn bad_durations_and_times_name_the_flag_and_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cwagentconfig.json");
    std::fs::write(
        &cfg,
        r#"{"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c"}}}}"#,
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let huge = "99999999999999999999999w";
    let cases: Vec<(Vec<&str>, &str, &str, &str)> = vec![
        // (arguments, flag, value, what is wrong)
        (
            vec![
                "agent",
                "--config",
                cfg,
                "--once",
                "--sample-interval",
                "-1s",
            ],
            "--sample-interval",
            "-1s",
            "is negative",
        ),
        (
            vec![
                "agent",
                "--config",
                cfg,
                "--once",
                "--sample-interval",
                huge,
            ],
            "--sample-interval",
            huge,
            "is too long",
        ),
        (
            vec!["up", "--data-dir", data, "--interval=-10s"],
            "--interval",
            "-10s",
            "is negative",
        ),
        (
            vec!["up", "--data-dir", data, "--interval", "0s"],
            "--interval",
            "0s",
            "more than zero",
        ),
        (
            vec!["simulate", "--server", NO_SERVER, "--interval=-1m"],
            "--interval",
            "-1m",
            "is negative",
        ),
        (
            vec!["simulate", "--server", NO_SERVER, "--backfill=-2d"],
            "--backfill",
            "-2d",
            "is negative",
        ),
        (
            vec![
                "simulate",
                "--server",
                NO_SERVER,
                "--duration",
                "18446744073709551616s",
            ],
            "--duration",
            "18446744073709551616s",
            "is too long",
        ),
        (
            vec![
                "query", "--server", NO_SERVER, "--group", "g", "--since", huge, "q",
            ],
            "--since",
            huge,
            "is too long",
        ),
        (
            vec![
                "query", "--server", NO_SERVER, "--group", "g", "--since", "--5m", "q",
            ],
            "--since",
            "--5m",
            "is negative",
        ),
        (
            vec![
                "query",
                "--server",
                NO_SERVER,
                "--group",
                "g",
                "--start",
                "-99999999999999d",
                "q",
            ],
            "--start",
            "-99999999999999d",
            "is too long",
        ),
        (
            vec![
                "metrics",
                "get",
                "--server",
                NO_SERVER,
                "--namespace",
                "N",
                "--metric-name",
                "M",
                "--start-time",
                "-9223372036854775807s",
            ],
            "--start-time",
            "-9223372036854775807s",
            "is too long",
        ),
        (
            vec![
                "metrics",
                "get",
                "--server",
                NO_SERVER,
                "--namespace",
                "N",
                "--metric-name",
                "M",
                "--start-time",
                "-24h",
                "--end-time",
                "99999999999999999999",
            ],
            "--end-time",
            "99999999999999999999",
            "out of range",
        ),
        (
            vec![
                "server",
                "--data-dir",
                data,
                "--flush-interval-secs",
                "18446744073709551615",
            ],
            "--flush-interval-secs",
            "18446744073709551615",
            "not in 1..=86400",
        ),
        (
            vec![
                "logs", "tail", "--server", NO_SERVER, "/g", "--since", "-1e9h",
            ],
            "--since",
            "-1e9h",
            "unknown unit",
        ),
    ];
    for (args, flag, value, what) in cases {
        let (code, stderr) = kinsight(&args);
        let shown = format!(
            "kinsight {}: exit {code}, stderr:\n{stderr}",
            args.join(" ")
        );
        assert!(!stderr.contains("panicked"), "{shown}");
        assert!(
            code == 1 || code == 2,
            "a usage error, not a crash: {shown}"
        );
        assert!(stderr.contains(flag), "names the flag: {shown}");
        assert!(stderr.contains(value), "names the value: {shown}");
        assert!(stderr.contains(what), "says what is wrong: {shown}");
    }
}

#[test]
fn durations_share_one_grammar() {
    // The same spellings work for every flag: fractions, sums, days and weeks.
    let (code, stderr) = kinsight(&[
        "query", "--server", NO_SERVER, "--group", "g", "--since", "1h30m", "q",
    ]);
    assert!(
        !stderr.contains("--since"),
        "1h30m is a valid --since (the call then fails to connect): exit {code}, {stderr}"
    );
    let (_, stderr) = kinsight(&[
        "logs", "tail", "--server", NO_SERVER, "/g", "--since", "1.5h",
    ]);
    assert!(!stderr.contains("--since"), "{stderr}");
}
