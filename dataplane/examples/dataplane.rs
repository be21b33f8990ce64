//! The `hoody-api dataplane` command without the rest of the binary: builds
//! in a fraction of the time, for profiling and `benches/proxy-vs-nginx.sh`
//! (`HOODY_BIN=target/release/examples/dataplane`; it accepts the same
//! `dataplane ...` arguments).

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Dataplane(dataplane::cli::DataplaneArgs),
}

fn main() -> anyhow::Result<()> {
    let Command::Dataplane(args) = Cli::parse().command;
    dataplane::cli::run(args)
}
