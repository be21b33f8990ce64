//! Command-line entry points owned by the control plane.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::admin::{self, Operation};
pub use crate::settings::ServeArgs;
use crate::settings::Settings;
use crate::state::AppState;
use crate::store::Store;

/// `hoody-api admin ...`
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The server's data directory.
    #[arg(long, env = "HOODY_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create a verified user; the password is read from standard input.
    CreateUser {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Write an online backup of the store to FILE.
    Backup { file: PathBuf },
    /// Create a token for a remote data-plane node; it is printed once.
    CreateNodeToken {
        /// A name for the node (letters, digits, '-', '_', '.').
        #[arg(long)]
        name: Option<String>,
    },
    /// List node tokens with each node's live status (when a server runs).
    ListNodeTokens,
    /// Revoke a node token; the node is refused from then on.
    RevokeNodeToken { id: String },
    /// Replace the operator's static routes with a routes FILE (the
    /// standalone data-plane format); published to every node.
    SetStaticRoutes { file: PathBuf },
    /// Load a backup FILE into an empty data directory (no server may run on it).
    /// Keys are not part of a backup: sessions issued before it must log in again.
    Restore { file: PathBuf },
}

/// Installs the tracing subscriber: JSON lines, or human-readable.
pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOODY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "pretty" {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&args)?;
    init_logging(&settings.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(crate::server::run(settings))
}

pub fn admin(args: AdminArgs) -> anyhow::Result<()> {
    let op = match args.command {
        AdminCommand::Restore { file } => return restore(&args.data_dir, &file),
        AdminCommand::CreateUser { email, admin, .. } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']).to_string();
            Operation::CreateUser {
                email,
                password,
                admin,
            }
        }
        AdminCommand::Backup { file } => Operation::Backup {
            path: std::path::absolute(&file).unwrap_or(file),
        },
        AdminCommand::CreateNodeToken { name } => Operation::CreateNodeToken { name },
        AdminCommand::ListNodeTokens => Operation::ListNodeTokens,
        AdminCommand::RevokeNodeToken { id } => Operation::RevokeNodeToken { id },
        AdminCommand::SetStaticRoutes { file } => {
            let text =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let routes = serde_json::from_slice(&text)
                .with_context(|| format!("cannot parse {}", file.display()))?;
            Operation::SetStaticRoutes { routes }
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(run_admin(&args.data_dir, op))?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

/// Restores into a stopped, empty store: merging a backup into live data
/// could pair records with indexes that no longer match.
fn restore(data_dir: &std::path::Path, file: &std::path::Path) -> anyhow::Result<()> {
    let store = match Store::open(&data_dir.join("db")) {
        Ok(store) => store,
        Err(e) if admin::store_is_locked(&e) => anyhow::bail!(
            "a server is running on {}: stop it before restoring",
            data_dir.display()
        ),
        Err(e) => return Err(e.into()),
    };
    if store.count(&crate::users::model::USERS)? > 0 {
        anyhow::bail!(
            "{} already holds users: restore into an empty data directory",
            data_dir.display()
        );
    }
    let records = crate::store::import_from_file(&store, file)
        .with_context(|| format!("cannot restore {}", file.display()))?;
    println!("{}", serde_json::json!({ "restored_records": records }));
    Ok(())
}

async fn run_admin(data_dir: &std::path::Path, op: Operation) -> anyhow::Result<serde_json::Value> {
    match Store::open(&data_dir.join("db")) {
        Ok(store) => {
            let state = AppState::with_store(Settings::for_data_dir(data_dir), store)?;
            let out = admin::execute(&state, op)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            state.store.flush()?;
            Ok(out)
        }
        Err(e) if admin::store_is_locked(&e) => admin::call_socket(data_dir, &op).await,
        Err(e) => Err(e.into()),
    }
}
