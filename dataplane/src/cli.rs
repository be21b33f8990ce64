//! `hoody-api dataplane`.

use clap::Args;

#[derive(Args, Debug)]
pub struct DataplaneArgs {}

pub fn run(_args: DataplaneArgs) -> anyhow::Result<()> {
    anyhow::bail!("dataplane is not wired yet")
}
