//! `mysql-zk-proxy sandbox ...` subcommands (OWNED BY THE SANDBOX HELPER).

use super::SandboxError;

#[derive(Debug, clap::Subcommand)]
pub enum SandboxCommand {
    /// Start the local cluster.
    Up,
}

pub async fn run(cmd: SandboxCommand) -> Result<(), SandboxError> {
    let _ = cmd;
    Err(SandboxError::Other("not implemented yet".into()))
}
