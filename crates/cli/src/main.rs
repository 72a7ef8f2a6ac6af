//! The `kinsight` binary: argument parsing and wiring of the library crates. Each subcommand
//! lives in its own module under `cmd/`; nothing here holds domain logic.

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kinsight",
    version,
    about = "Self-hosted Container Insights for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node agent: collect performance events (and logs) and ship them.
    Agent(cmd::agent::AgentArgs),
    /// Run the server: ingest, storage, queries, alarms, console.
    Server(cmd::server::ServerArgs),
    /// Run everything on this machine: server + agent + console.
    Up(cmd::up::UpArgs),
    /// Run a Logs Insights (or SQL) query.
    Query(cmd::query::QueryArgs),
    /// Browse log groups and streams.
    Logs(cmd::logs::LogsArgs),
    /// Query metrics.
    Metrics(cmd::metrics::MetricsArgs),
    /// Manage alarms.
    Alarms(cmd::alarms::AlarmsArgs),
    /// Ship a simulated cluster's performance events and application logs to a server.
    Simulate(cmd::simulate::SimulateArgs),
    /// The tokens Secret in a cluster (the Helm chart's hook Job).
    Tokens(cmd::tokens::TokensArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cmd::init_tracing();
    let result = match cli.command {
        Command::Agent(a) => cmd::agent::run(a),
        Command::Server(a) => cmd::server::run(a),
        Command::Up(a) => cmd::up::run(a),
        Command::Query(a) => cmd::query::run(a),
        Command::Logs(a) => cmd::logs::run(a),
        Command::Metrics(a) => cmd::metrics::run(a),
        Command::Alarms(a) => cmd::alarms::run(a),
        Command::Simulate(a) => cmd::simulate::run(a),
        Command::Tokens(a) => cmd::tokens::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kinsight: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
