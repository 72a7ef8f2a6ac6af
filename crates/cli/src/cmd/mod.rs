//! One module per subcommand. Each exposes `XArgs` (clap) and `run(XArgs) -> Result<ExitCode>`.

pub mod agent;
pub mod alarms;
pub mod logs;
pub mod metrics;
pub mod query;
pub mod server;
pub mod up;

/// Logs go to stderr so that `--output -` keeps stdout for data. `RUST_LOG` overrides the
/// default level (info).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Builds a multi-threaded tokio runtime for a subcommand.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
