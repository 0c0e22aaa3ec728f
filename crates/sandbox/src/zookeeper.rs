//! `ZkServer`: one standalone ZooKeeper 3.8 (Debian package, Java 17) on a free
//! 127.0.0.1 port in its own dir, tickTime 500 ms (session timeouts 1-10 s);
//! optionally also a TLS client port ([`ZkServer::start_tls`]).

use super::instance::InstanceDir;
use super::process;
use super::process::{file_len, log_contains_since, log_tail, poll_until};
use super::process::{server_command, PortChoice, ProcSlot, ServerProc};
use super::zk_tls::{ZkTlsSpec, TLS_JARS};
use super::{Result, SandboxError};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";
const SLF4J_JAR: &str = "/usr/share/java/slf4j-simple.jar";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(10);
const PORT_ATTEMPTS: u32 = 5;

/// A standalone ZooKeeper server process. Dropping it kills the process and
/// (for temp instances) removes its dir.
#[derive(Debug)]
pub struct ZkServer {
    proc: ProcSlot,
    port: u16,
    dir: InstanceDir,
    /// The TLS client port and how it is served, when started with one.
    tls: Option<(ZkTlsSpec, u16)>,
}

impl ZkServer {
    /// Start on a free port in a new temp dir; returns once it serves
    /// (`srvr` says standalone and `conf` shows our dataDir), ~0.3-1 s.
    /// Blocking: from async code use [`ZkServer::start_async`].
    pub fn start() -> Result<ZkServer> {
        Self::launch(InstanceDir::temp("zk")?, PortChoice::Any, false, None)
    }

    /// [`ZkServer::start`] on the blocking pool, for async code.
    pub async fn start_async() -> Result<ZkServer> {
        super::cluster::blocking(ZkServer::start).await
    }

    /// [`ZkServer::start`] with a TLS client port besides the plain one
    /// (which stays for the harness's own writes and four-letter words).
    pub fn start_tls(spec: ZkTlsSpec) -> Result<ZkServer> {
        Self::launch(InstanceDir::temp("zk")?, PortChoice::Any, false, Some(spec))
    }

    /// Start (or restart) in `dir`, detached from this process (`sandbox up`).
    pub fn start_persistent(dir: &Path, port: PortChoice) -> Result<ZkServer> {
        Self::launch(InstanceDir::persistent(dir)?, port, true, None)
    }

    /// Re-attach to a running persistent server (PID checked against the dir).
    pub fn adopt(dir: &Path, port: u16, pid: Option<u32>) -> Result<ZkServer> {
        let dir = InstanceDir::persistent(dir)?;
        let proc = pid.and_then(|p| ServerProc::adopt("zookeeper", p, dir.path()));
        Ok(ZkServer {
            proc: ProcSlot::adopted("zookeeper", proc),
            port,
            dir,
            tls: None,
        })
    }

    fn launch(
        dir: InstanceDir,
        port: PortChoice,
        detached: bool,
        tls: Option<ZkTlsSpec>,
    ) -> Result<ZkServer> {
        let mut zk = ZkServer {
            proc: ProcSlot::new("zookeeper", detached),
            port: 0,
            dir,
            tls: tls.map(|spec| (spec, 0)),
        };
        for attempt in 1..=PORT_ATTEMPTS {
            zk.port = port.pick(attempt)?;
            if let Some((_, secure)) = &mut zk.tls {
                *secure = process::free_port()?;
            }
            match zk.spawn_and_wait()? {
                Ready::Serving => return Ok(zk),
                Ready::PortTaken if port.may_retry() && attempt < PORT_ATTEMPTS => continue,
                Ready::PortTaken => break,
            }
        }
        Err(zk.start_error(format!("port {} already in use", zk.port)))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `"127.0.0.1:PORT"`.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The TLS client port, when started with [`ZkServer::start_tls`].
    pub(crate) fn secure_port(&self) -> Option<u16> {
        self.tls.as_ref().map(|(_, port)| *port)
    }

    /// `"127.0.0.1:SECURE_PORT"`, when started with [`ZkServer::start_tls`].
    pub fn secure_connect_string(&self) -> Option<String> {
        self.secure_port().map(|p| format!("127.0.0.1:{p}"))
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the process is alive (a zombie counts as dead).
    pub(crate) fn is_running(&self) -> bool {
        self.proc.is_running()
    }

    /// SIGTERM, wait for exit (SIGKILL after 10 s).
    pub fn stop(&mut self) -> Result<()> {
        self.proc.stop(STOP_GRACE)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) -> Result<()> {
        self.proc.kill()
    }

    /// Start again on the same port and data dir (stops it first if running).
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        match self.spawn_and_wait()? {
            Ready::Serving => Ok(()),
            Ready::PortTaken => {
                Err(self.start_error(format!("port {} taken meanwhile", self.port)))
            }
        }
    }

    /// SIGSTOP: the server stops answering (connections hang, nothing is
    /// refused); sessions expire once it resumes after their timeout.
    pub fn pause(&self) -> Result<()> {
        self.proc.pause()
    }

    /// SIGCONT after [`ZkServer::pause`].
    pub fn resume(&self) -> Result<()> {
        self.proc.resume()
    }

    /// Pause for `d`, then resume: every client session whose timeout is
    /// shorter than `d` is reported `Expired` right after the resume
    /// (measured: 1 s sessions expire after a 1.5 s pause).
    pub async fn pause_for(&self, d: Duration) -> Result<()> {
        self.pause()?;
        tokio::time::sleep(d).await;
        self.resume()
    }

    /// Send a four-letter-word command (`srvr`, `stat`, `mntr`, `ruok`, `conf`).
    pub fn four_letter(&self, word: &str) -> Result<String> {
        four_letter_word(self.port, word)
            .map_err(|e| SandboxError::io(format!("zookeeper 4lw {word} on port {}", self.port), e))
    }

    fn start_error(&self, reason: String) -> SandboxError {
        SandboxError::Start {
            instance: format!("zookeeper ({})", self.dir().display()),
            reason,
            log_tail: log_tail(&self.dir().join("zk.log"), 30),
        }
    }
}

/// Outcome of one start attempt.
enum Ready {
    Serving,
    PortTaken,
}

impl ZkServer {
    fn write_config(&self) -> Result<()> {
        let d = self.dir();
        let mut cfg = format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={data}\n\
             clientPort={port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n\
             admin.enableServer=false\nforceSync=no\n\
             4lw.commands.whitelist=ruok,srvr,stat,mntr,conf\n",
            data = d.join("data").display(),
            port = self.port,
        );
        if let Some((spec, port)) = &self.tls {
            cfg += &spec.config_lines(d, *port)?;
        }
        std::fs::create_dir_all(d.join("data"))
            .and_then(|()| std::fs::write(d.join("zoo.cfg"), cfg))
            .map_err(|e| SandboxError::io(format!("write {}/zoo.cfg", d.display()), e))
    }

    fn command(&self) -> Result<std::process::Command> {
        let java_found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("java").is_file()));
        for (found, what) in [(java_found, "java"), (Path::new(ZK_JAR).exists(), ZK_JAR)] {
            if !found {
                let reason = format!("{what} missing: run scripts/install-deps.sh");
                return Err(self.start_error(reason));
            }
        }
        let d = self.dir();
        let mut cp = ZK_JAR.to_owned();
        if Path::new(SLF4J_JAR).exists() {
            cp = format!("{cp}:{SLF4J_JAR}");
        }
        if self.tls.is_some() {
            for jar in TLS_JARS {
                if !Path::new(jar).exists() {
                    let reason =
                        format!("{jar} missing (libnetty-java): run scripts/install-deps.sh");
                    return Err(self.start_error(reason));
                }
                cp = format!("{cp}:{jar}");
            }
        }
        let mut cmd = server_command("java", &d.join("zk.log"), self.proc.detached())?;
        cmd.args(["-Xms32m", "-Xmx256m", "-XX:+UseSerialGC"])
            .args(["-XX:TieredStopAtLevel=1", "-XX:-UsePerfData"])
            .arg("-Dzookeeper.admin.enableServer=false")
            .arg("-Dorg.slf4j.simpleLogger.showDateTime=true")
            .arg("-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS")
            .args(["-Djava.net.preferIPv4Stack=true", "-cp", &cp])
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(d.join("zoo.cfg"));
        Ok(cmd)
    }

    fn spawn_and_wait(&mut self) -> Result<Ready> {
        self.write_config()?;
        let mut cmd = self.command()?;
        let d = self.dir().to_owned();
        let log = d.join("zk.log");
        let log_start = file_len(&log);
        let mut proc = ServerProc::spawn("zookeeper", &mut cmd, &d)?;
        if let Some(pid) = proc.pid() {
            self.dir.record_pid(pid)?;
        }
        let data_dir = d.join("data").display().to_string();
        let port = self.port;
        let secure = self.secure_port();
        let ready = poll_until("zookeeper to serve", START_TIMEOUT, || {
            if proc.exited() {
                return if log_contains_since(&log, log_start, "Address already in use") {
                    Ok(Some(Ready::PortTaken))
                } else {
                    Err(self.start_error("process exited".into()))
                };
            }
            let listening = secure.is_none_or(port_open);
            Ok((serving_from(port, &data_dir) && listening).then_some(Ready::Serving))
        });
        match ready {
            Ok(r) => {
                self.proc.set(proc);
                Ok(r)
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

/// Serving, and the server on `port` is the one using `data_dir` (not a
/// stranger that won a port race).
fn serving_from(port: u16, data_dir: &str) -> bool {
    let standalone = four_letter_word(port, "srvr").is_ok_and(|s| s.contains("Mode: standalone"));
    standalone && four_letter_word(port, "conf").is_ok_and(|s| s.contains(data_dir))
}

/// Whether something accepts connections on 127.0.0.1:`port`.
fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// One four-letter-word exchange with 127.0.0.1:`port`. A server still
/// starting may answer without closing the socket, so the reply is whatever
/// arrived when the socket closes or goes quiet for 250 ms.
pub(crate) fn four_letter_word(port: u16, word: &str) -> std::io::Result<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_millis(250)))?;
    s.set_write_timeout(Some(Duration::from_secs(1)))?;
    s.write_all(word.as_bytes())?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) && !out.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
