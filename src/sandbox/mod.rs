//! Sandbox: real ZooKeeper and MariaDB (primary + GTID replica) as plain
//! processes on free loopback ports in temp dirs — the integration-test
//! harness and the `mysql-zk-proxy sandbox` cluster.
//!
//! OWNED BY THE SANDBOX HELPER — interface to be written.

pub mod cli;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    Other(String),
}
