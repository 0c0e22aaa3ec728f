//! The persistent sandbox's state file (`state.json`: ports, PIDs, roles,
//! znode) and the lock that serialises `sandbox` commands on one dir.

use super::{Result, SandboxError};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = ".lock";
const LOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// Default dir of the persistent sandbox: `${TMPDIR:-/tmp}/mysql-zk-proxy-sandbox`.
pub(crate) fn default_dir() -> PathBuf {
    std::env::temp_dir().join("mysql-zk-proxy-sandbox")
}

/// One MariaDB server of the persistent sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DbState {
    pub name: String,
    pub server_id: u32,
    pub port: u16,
    pub pid: Option<u32>,
}

/// Everything a later `sandbox` command needs to find the cluster again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxState {
    pub dir: PathBuf,
    pub zk_port: u16,
    pub zk_pid: Option<u32>,
    pub zk_connect: String,
    pub primary_path: String,
    /// `db1` and `db2`.
    pub dbs: Vec<DbState>,
    /// Name of the current primary (`db1` or `db2`).
    pub primary: String,
    /// Users, schemas and replication were set up once.
    pub bootstrapped: bool,
}

impl SandboxState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// `Ok(None)` when the dir has no state yet.
    pub fn load(dir: &Path) -> Result<Option<SandboxState>> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SandboxError::io(format!("read {}", path.display()), e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| SandboxError::StateFile {
                path,
                reason: e.to_string(),
            })
    }

    /// Write atomically (temp file + rename).
    pub(crate) fn save(&self) -> Result<()> {
        let path = Self::path(&self.dir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| SandboxError::StateFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::fs::write(&tmp, text + "\n")
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| SandboxError::io(format!("write {}", path.display()), e))
    }

    pub fn db(&self, name: &str) -> Result<&DbState> {
        self.dbs
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| self.corrupt(format!("no server named {name}")))
    }

    pub(crate) fn db_mut(&mut self, name: &str) -> Option<&mut DbState> {
        self.dbs.iter_mut().find(|d| d.name == name)
    }

    /// Name of the server that is not the primary.
    pub(crate) fn replica_name(&self) -> Result<&str> {
        self.dbs
            .iter()
            .map(|d| d.name.as_str())
            .find(|n| *n != self.primary)
            .ok_or_else(|| self.corrupt("no replica recorded".into()))
    }

    fn corrupt(&self, reason: String) -> SandboxError {
        SandboxError::StateFile {
            path: Self::path(&self.dir),
            reason,
        }
    }
}

/// An exclusive `flock` on `<dir>/.lock`, released on drop.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SandboxError::io(format!("create {}", dir.display()), e))?;
        let path = dir.join(LOCK_FILE);
        let file = File::create(&path)
            .map_err(|e| SandboxError::io(format!("open {}", path.display()), e))?;
        let start = Instant::now();
        // SAFETY: flock on an fd we own; no memory is shared.
        while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            if start.elapsed() > LOCK_TIMEOUT {
                return Err(SandboxError::Timeout {
                    what: format!("another sandbox command to release {}", path.display()),
                    secs: LOCK_TIMEOUT.as_secs_f64(),
                });
            }
            std::thread::sleep(super::process::POLL_INTERVAL);
        }
        Ok(DirLock { _file: file })
    }
}
