//! `MariaDb`: one mariadbd (binlog + GTID, replica-ready) on a loopback port in
//! its own dir, a copy of the cached datadir template; root SQL over its unix
//! socket through the `mariadb` CLI.

use super::instance::InstanceDir;
use super::process::{file_len, log_contains_since, log_tail, poll_until};
use super::process::{server_command, PortChoice, ProcSlot, ServerProc};
use super::template::{copy_dir, template_datadir, INNODB_LOG_FILE_SIZE, MARIADBD};
use super::{Result, SandboxError};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: u32 = 5;

/// mariadbd options serving TLS with PEM `cert` and `key` (`ca` verifies
/// client certificates, which are not required).
pub fn tls_args(cert: &Path, key: &Path, ca: &Path) -> Vec<String> {
    vec![
        format!("--ssl-cert={}", cert.display()),
        format!("--ssl-key={}", key.display()),
        format!("--ssl-ca={}", ca.display()),
    ]
}

/// Identity of one server: `name` (e.g. `db1`) names its binlogs.
#[derive(Debug, Clone)]
pub struct DbSpec {
    pub name: String,
    pub server_id: u32,
    pub read_only: bool,
}

/// One mariadbd process. Dropping it kills the process and removes a temp dir.
#[derive(Debug)]
pub struct MariaDb {
    proc: ProcSlot,
    spec: DbSpec,
    port: u16,
    dir: InstanceDir,
    /// More mariadbd options (TLS files, plugins), on every start.
    extra_args: Vec<String>,
}

impl MariaDb {
    /// A fresh server on a free port in a new temp dir.
    pub fn start(name: &str, server_id: u32, read_only: bool) -> Result<MariaDb> {
        Self::start_with(name, server_id, read_only, Vec::new())
    }

    /// [`MariaDb::start`] with more mariadbd options, e.g. [`tls_args`].
    pub fn start_with(
        name: &str,
        server_id: u32,
        read_only: bool,
        extra_args: Vec<String>,
    ) -> Result<MariaDb> {
        let spec = DbSpec {
            name: name.to_owned(),
            server_id,
            read_only,
        };
        let dir = InstanceDir::temp(name)?;
        Self::launch(dir, spec, PortChoice::Any, false, extra_args)
    }

    /// Start in a kept `dir` (fresh copy if it has no data yet), detached
    /// from this process (`sandbox up`).
    pub fn start_persistent(dir: &Path, spec: DbSpec, port: PortChoice) -> Result<MariaDb> {
        Self::launch(InstanceDir::persistent(dir)?, spec, port, true, Vec::new())
    }

    /// Re-attach to a persistent server (the PID is checked against the dir).
    pub fn adopt(dir: &Path, spec: DbSpec, port: u16, pid: Option<u32>) -> Result<MariaDb> {
        let dir = InstanceDir::persistent(dir)?;
        let proc = pid.and_then(|p| ServerProc::adopt(&spec.name, p, dir.path()));
        Ok(MariaDb {
            proc: ProcSlot::adopted(&spec.name, proc),
            spec,
            port,
            dir,
            extra_args: Vec::new(),
        })
    }

    fn launch(
        dir: InstanceDir,
        spec: DbSpec,
        port: PortChoice,
        detached: bool,
        extra_args: Vec<String>,
    ) -> Result<Self> {
        let mut db = MariaDb {
            proc: ProcSlot::new(&spec.name, detached),
            spec,
            port: 0,
            dir,
            extra_args,
        };
        db.prepare_dir()?;
        for attempt in 1..=PORT_ATTEMPTS {
            db.port = port.pick(attempt)?;
            match db.spawn_and_wait()? {
                true => return Ok(db),
                false if port.may_retry() && attempt < PORT_ATTEMPTS => continue,
                false => break,
            }
        }
        Err(db.start_error(format!("port {} already in use", db.port)))
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }
    pub fn spec(&self) -> &DbSpec {
        &self.spec
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    /// The unix socket root logs in through.
    pub fn socket(&self) -> PathBuf {
        self.dir().join("mysqld.sock")
    }
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }
    /// Alive (a zombie counts as dead).
    pub(crate) fn is_running(&self) -> bool {
        self.proc.is_running()
    }

    /// Record the role so a later `start_again` starts with the right read_only.
    pub(crate) fn set_read_only_at_start(&mut self, read_only: bool) {
        self.spec.read_only = read_only;
    }

    /// SIGTERM, wait (SIGKILL after 30 s).
    pub fn stop(&mut self) -> Result<()> {
        self.proc.stop(STOP_GRACE)
    }

    /// SIGKILL and reap: an unplanned crash.
    pub fn kill(&mut self) -> Result<()> {
        self.proc.kill()
    }

    /// Start again on the same port and datadir (stops it first if running).
    pub fn start_again(&mut self) -> Result<()> {
        self.stop()?;
        match self.spawn_and_wait()? {
            true => Ok(()),
            false => Err(self.start_error(format!("port {} taken meanwhile", self.port))),
        }
    }

    /// Stop it, delete its data (binlogs and relay logs included) and start
    /// it again from the template datadir: a blank server on the same port,
    /// ready to be made a replica.
    pub fn start_blank(&mut self) -> Result<()> {
        self.stop()?;
        let data = self.dir().join("data");
        if data.exists() {
            std::fs::remove_dir_all(&data)
                .map_err(|e| SandboxError::io(format!("remove {}", data.display()), e))?;
        }
        self.prepare_dir()?;
        match self.spawn_and_wait()? {
            true => Ok(()),
            false => Err(self.start_error(format!("port {} taken meanwhile", self.port))),
        }
    }

    /// SIGSTOP (a hung server: connections stall, nothing is refused).
    pub fn pause(&self) -> Result<()> {
        self.proc.pause()
    }

    /// SIGCONT after [`MariaDb::pause`].
    pub fn resume(&self) -> Result<()> {
        self.proc.resume()
    }

    pub(crate) fn start_error(&self, reason: String) -> SandboxError {
        SandboxError::Start {
            instance: format!("{} ({})", self.spec.name, self.dir().display()),
            reason,
            log_tail: log_tail(&self.dir().join("error.log"), 30),
        }
    }
}

/// `session_track_system_variables` of sandbox servers.
pub const TRACKED_VARIABLES: &str = "--session-track-system-variables=autocommit,\
character_set_client,character_set_connection,character_set_results,time_zone,last_gtid";

impl MariaDb {
    fn prepare_dir(&self) -> Result<()> {
        let d = self.dir();
        let sock = self.socket();
        if sock.as_os_str().len() > 100 {
            return Err(self.start_error(format!("socket path too long: {}", sock.display())));
        }
        std::fs::create_dir_all(d.join("tmp"))
            .map_err(|e| SandboxError::io(format!("create {}/tmp", d.display()), e))?;
        if !d.join("data/mysql").is_dir() {
            let _ = std::fs::remove_dir_all(d.join("data"));
            copy_dir(&template_datadir()?, &d.join("data"))?;
        }
        Ok(())
    }

    fn command(&self) -> Result<std::process::Command> {
        let d = self.dir();
        let s = &self.spec;
        let mut cmd = server_command(MARIADBD, &d.join("stdout.log"), self.proc.detached())?;
        cmd.args(["--no-defaults", "--user=root"])
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", d.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .arg(format!("--port={}", self.port))
            .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
            .arg(format!("--server-id={}", s.server_id))
            .arg(format!("--log-bin={}-bin", s.name))
            .arg(format!("--relay-log={}-relay-bin", s.name))
            .args([
                "--binlog-format=ROW",
                "--log-slave-updates=1",
                "--gtid-strict-mode=1",
            ])
            .arg(format!("--read-only={}", u8::from(s.read_only)))
            .args([
                "--max-connections=1000",
                "--max-allowed-packet=64M",
                "--local-infile=1",
            ])
            // lets a migration see a session's user locks and LOCK TABLES
            .arg("--plugin-load-add=metadata_lock_info")
            // the server's defaults plus last_gtid: commit OKs name their
            // GTID, which the proxy's ledger reads (docs/ledger.md)
            .arg(TRACKED_VARIABLES)
            .args(["--slave-net-timeout=10", "--character-set-server=utf8mb4"])
            .args([
                "--collation-server=utf8mb4_general_ci",
                "--innodb-buffer-pool-size=64M",
            ])
            .args([
                INNODB_LOG_FILE_SIZE,
                "--innodb-flush-log-at-trx-commit=2",
                "--sync-binlog=0",
            ])
            .args(&self.extra_args);
        Ok(cmd)
    }

    /// One start attempt: `Ok(false)` when the port was taken.
    fn spawn_and_wait(&mut self) -> Result<bool> {
        let sock = self.socket();
        let _ = std::fs::remove_file(&sock);
        let _ = std::fs::remove_file(sock.with_extension("sock.lock"));
        let log = self.dir().join("error.log");
        let log_start = file_len(&log);
        let mut proc = ServerProc::spawn(&self.spec.name, &mut self.command()?, self.dir())?;
        if let Some(pid) = proc.pid() {
            self.dir.record_pid(pid)?;
        }
        let what = format!("{} to accept connections", self.spec.name);
        let ready = poll_until(&what, START_TIMEOUT, || {
            if proc.exited() {
                return if log_contains_since(&log, log_start, "Address already in use") {
                    Ok(Some(false))
                } else {
                    Err(self.start_error("mariadbd exited".into()))
                };
            }
            Ok(greets(&sock).then_some(true))
        });
        match ready {
            Ok(ok) => {
                self.proc.set(proc);
                Ok(ok)
            }
            Err(e) => {
                let _ = proc.kill();
                Err(match e {
                    SandboxError::Timeout { .. } => self.start_error(e.to_string()),
                    other => other,
                })
            }
        }
    }
}

/// The server on `sock` sends a protocol-10 greeting (it is ready for logins).
fn greets(sock: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut head = [0u8; 5];
    s.read_exact(&mut head).is_ok() && head[4] == 10
}
