//! The MariaDB datadir template: `mariadb-install-db` runs once per machine
//! (per mariadbd version) into a cache dir, built in a temp dir and renamed
//! into place atomically; each instance gets a copy of it.

use super::process::log_tail;
use super::{Result, SandboxError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub(crate) const MARIADBD: &str = "/usr/sbin/mariadbd";
/// InnoDB redo log size, for install and every start (the 96M default would
/// make each copy slow).
pub(crate) const INNODB_LOG_FILE_SIZE: &str = "--innodb-log-file-size=8M";

/// Where templates live: `$TMPDIR/mzp-sandbox-cache`.
fn cache_root() -> PathBuf {
    std::env::temp_dir().join("mzp-sandbox-cache")
}

/// `mariadbd --version`, reduced to a file-name-safe key.
fn version_key() -> Result<String> {
    let out = Command::new(MARIADBD)
        .arg("--version")
        .output()
        .map_err(|e| {
            SandboxError::io(
                format!("run {MARIADBD} --version (run scripts/install-deps.sh)"),
                e,
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ver = text
        .split_whitespace()
        .skip_while(|w| *w != "Ver")
        .nth(1)
        .unwrap_or("unknown");
    let safe: String = ver
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(format!("mariadb-{safe}-log8M"))
}

/// The template datadir (`<cache>/<key>/data`), built on first use.
pub(crate) fn template_datadir() -> Result<PathBuf> {
    static DONE: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = done.as_ref() {
        return Ok(p.clone());
    }
    let root = cache_root();
    let final_dir = root.join(version_key()?);
    if !final_dir.join("data/mysql").is_dir() {
        build_template(&root, &final_dir)?;
    }
    let data = final_dir.join("data");
    *done = Some(data.clone());
    Ok(data)
}

/// Remove `building-*` dirs older than an hour (a build killed midway).
fn remove_abandoned_builds(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600));
        if old && e.file_name().to_string_lossy().starts_with("building-") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn build_template(root: &Path, final_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(root)
        .map_err(|e| SandboxError::io(format!("create {}", root.display()), e))?;
    remove_abandoned_builds(root);
    let tmp = tempfile::Builder::new()
        .prefix("building-")
        .tempdir_in(root)
        .map_err(|e| SandboxError::io(format!("temp dir in {}", root.display()), e))?;
    let t = tmp.path();
    std::fs::create_dir_all(t.join("tmp"))
        .map_err(|e| SandboxError::io(format!("create {}/tmp", t.display()), e))?;
    let log = t.join("install.log");
    let log_file = std::fs::File::create(&log)
        .map_err(|e| SandboxError::io(format!("create {}", log.display()), e))?;
    let log_err = log_file
        .try_clone()
        .map_err(|e| SandboxError::io("dup install log fd", e))?;
    let status = Command::new("mariadb-install-db")
        .args([
            "--no-defaults",
            "--user=root",
            "--auth-root-authentication-method=normal",
        ])
        .arg("--skip-test-db")
        .arg(format!("--datadir={}", t.join("data").display()))
        .arg(format!("--tmpdir={}", t.join("tmp").display()))
        .arg(INNODB_LOG_FILE_SIZE)
        .stdin(std::process::Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .status()
        .map_err(|e| SandboxError::io("run mariadb-install-db (run scripts/install-deps.sh)", e))?;
    if !status.success() {
        return Err(SandboxError::Command {
            instance: "mariadb template".into(),
            command: "mariadb-install-db".into(),
            status: status.to_string(),
            stderr: log_tail(&log, 30),
        });
    }
    let _ = std::fs::remove_dir_all(t.join("tmp"));
    // Atomic publish; if another process won the race, its copy is as good.
    let built = tmp.keep();
    if std::fs::rename(&built, final_dir).is_err() {
        let _ = std::fs::remove_dir_all(&built);
        if !final_dir.join("data/mysql").is_dir() {
            return Err(SandboxError::State(format!(
                "could not install the MariaDB template at {}",
                final_dir.display()
            )));
        }
    }
    Ok(())
}

/// Recursive copy of a (template) directory.
pub(crate) fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let ctx = |e| SandboxError::io(format!("copy {} -> {}", from.display(), to.display()), e);
    std::fs::create_dir_all(to).map_err(ctx)?;
    for entry in std::fs::read_dir(from).map_err(ctx)? {
        let entry = entry.map_err(ctx)?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(ctx)?.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(ctx)?;
        }
    }
    Ok(())
}
