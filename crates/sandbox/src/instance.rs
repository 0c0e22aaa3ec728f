//! Instance directories: one per server, either a temp dir under the sandbox
//! root (owner PID recorded, removed on drop, swept when its owner died) or a
//! persistent dir kept for the `sandbox` CLI.

use super::process::{cmdline_mentions, pid_alive, pid_start_time, poll_until, signal};
use super::{Result, SandboxError};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;

const OWNER_FILE: &str = "owner";
const PID_FILE: &str = "server.pid";

/// Parent of all temp instance dirs: `$TMPDIR/mzp-sandbox` (short: unix
/// socket paths must stay under 108 bytes).
pub fn sandbox_root() -> PathBuf {
    std::env::temp_dir().join("mzp-sandbox")
}

/// A server's directory. Temp dirs are removed on drop; persistent ones are kept.
#[derive(Debug)]
pub(crate) struct InstanceDir {
    path: PathBuf,
    remove_on_drop: bool,
}

impl InstanceDir {
    /// A new temp dir `<root>/<prefix>-XXXXXX` owned by this process.
    pub(crate) fn temp(prefix: &str) -> Result<InstanceDir> {
        let root = sandbox_root();
        std::fs::create_dir_all(&root)
            .map_err(|e| SandboxError::io(format!("create {}", root.display()), e))?;
        static SWEEP: Once = Once::new();
        SWEEP.call_once(|| sweep_stale(&root));
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir_in(&root)
            .map_err(|e| SandboxError::io(format!("create temp dir in {}", root.display()), e))?
            .keep();
        let me = std::process::id();
        let owner = format!("{me} {}\n", pid_start_time(me).unwrap_or(0));
        let inst = InstanceDir {
            path: dir,
            remove_on_drop: true,
        };
        inst.write(OWNER_FILE, &owner)?;
        Ok(inst)
    }

    /// A kept directory (created if missing), for the persistent sandbox.
    pub fn persistent(path: &Path) -> Result<InstanceDir> {
        std::fs::create_dir_all(path)
            .map_err(|e| SandboxError::io(format!("create {}", path.display()), e))?;
        Ok(InstanceDir {
            path: path.to_owned(),
            remove_on_drop: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record the server PID so a sweep can kill it if this process dies hard.
    pub(crate) fn record_pid(&self, pid: u32) -> Result<()> {
        self.write(PID_FILE, &format!("{pid}\n"))
    }

    fn write(&self, name: &str, text: &str) -> Result<()> {
        let p = self.path.join(name);
        std::fs::write(&p, text).map_err(|e| SandboxError::io(format!("write {}", p.display()), e))
    }
}

impl Drop for InstanceDir {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Whether the owner recorded in `dir` is still running (same PID and start time).
fn owner_alive(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(OWNER_FILE)) else {
        // No owner file: being created right now, or not ours; leave it.
        return true;
    };
    let mut it = text.split_whitespace().map(|s| s.parse::<u64>().ok());
    let (Some(Some(pid)), Some(Some(start))) = (it.next(), it.next()) else {
        return false;
    };
    let Ok(pid) = u32::try_from(pid) else {
        return false;
    };
    pid_alive(pid) && (start == 0 || pid_start_time(pid) == Some(start))
}

/// Kill the recorded server of every instance dir whose owner is dead (only
/// if its cmdline mentions that dir) and remove the dir.
pub fn sweep_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for dir in entries.flatten().map(|e| e.path()) {
        if !dir.is_dir() || owner_alive(&dir) {
            continue;
        }
        if let Some(pid) = std::fs::read_to_string(dir.join(PID_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            if pid_alive(pid) && cmdline_mentions(pid, &dir) {
                let _ = signal(pid, libc::SIGCONT);
                let _ = signal(pid, libc::SIGKILL);
                let _ = poll_until("stale server to die", Duration::from_secs(5), || {
                    Ok((!pid_alive(pid)).then_some(()))
                });
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
