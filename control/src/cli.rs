//! Command-line entry points owned by the control plane.

use clap::Args;

/// Settings of `hoody-api serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {}

/// `hoody-api admin ...`
#[derive(Args, Debug)]
pub struct AdminArgs {}

pub fn serve(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("serve is not wired yet")
}

pub fn admin(_args: AdminArgs) -> anyhow::Result<()> {
    anyhow::bail!("admin is not wired yet")
}
