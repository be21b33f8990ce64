//! The `hoody-api` binary: parses the command line and hands each subcommand
//! to the crate that owns it. No behaviour lives here.

use clap::{Parser, Subcommand};

/// Both planes allocate many small, short-lived objects per request on
/// several threads; mimalloc's thread-local free lists cost less there than
/// glibc malloc's arenas and consolidation (see docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hoody-api",
    version,
    about = "Host containers and serve their traffic"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane, the data plane and the container runtime in one process.
    Serve(control::cli::ServeArgs),
    /// Run a data-plane node: from a static routes file or fed by a remote control plane.
    Dataplane(dataplane::cli::DataplaneArgs),
    /// Work with WebAssembly hooks locally.
    Hook {
        #[command(subcommand)]
        command: HookCommand,
    },
    /// Administrative commands (users, node tokens, backups).
    Admin(control::cli::AdminArgs),
}

#[derive(Subcommand)]
enum HookCommand {
    /// Run a hook module against a sample request and print what it decided.
    Run(hook_engine::cli::RunArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => control::cli::serve(args),
        Command::Dataplane(args) => dataplane::cli::run(args),
        Command::Hook {
            command: HookCommand::Run(args),
        } => hook_engine::cli::run(args),
        Command::Admin(args) => control::cli::admin(args),
    }
}
