//! Process hygiene for sandbox servers: free ports, `/proc` liveness checks,
//! spawning without stray fds, signalling by PID only, reaping, and polling
//! for conditions with a deadline.

use super::{Result, SandboxError};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Interval between polls of a condition (never a condition itself).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A free TCP port on 127.0.0.1 (bound, read, closed: callers retry on a race).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| SandboxError::io("bind 127.0.0.1:0 for a free port", e))?;
    let port = l
        .local_addr()
        .map_err(|e| SandboxError::io("local_addr of a free-port listener", e))?
        .port();
    Ok(port)
}

/// A loopback port that refuses connections for as long as this value lives:
/// a socket bound to it that never listens, so no other process (or test
/// server) can take the port meanwhile. For "the primary is down" tests.
pub struct RefusedPort {
    _socket: socket2::Socket,
    port: u16,
}

impl RefusedPort {
    pub fn new() -> Result<RefusedPort> {
        use socket2::{Domain, Socket, Type};
        let err = |what| move |e| SandboxError::io(what, e);
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)
            .map_err(err("socket for a refused port"))?;
        let any: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
        socket
            .bind(&any.into())
            .map_err(err("bind 127.0.0.1:0 for a refused port"))?;
        let port = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.port())
            .ok_or_else(|| {
                SandboxError::io(
                    "local_addr of a refused port",
                    std::io::Error::other("not an inet address"),
                )
            })?;
        Ok(RefusedPort {
            _socket: socket,
            port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// How a server picks its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChoice {
    /// A free port; another one if a start loses a port race.
    Any,
    /// This port when free, else as `Any` (the persistent sandbox's defaults).
    Preferred(u16),
    /// Exactly this port (a restart): a port race is an error.
    Fixed(u16),
}

impl PortChoice {
    /// The port for start attempt `attempt` (1-based).
    pub fn pick(self, attempt: u32) -> Result<u16> {
        match self {
            PortChoice::Fixed(p) => Ok(p),
            PortChoice::Preferred(p) if attempt == 1 && port_is_free(p) => Ok(p),
            _ => free_port(),
        }
    }

    /// Whether another attempt on another port is allowed.
    pub(crate) fn may_retry(self) -> bool {
        !matches!(self, PortChoice::Fixed(_))
    }
}

/// Whether nothing listens on 127.0.0.1:`port` right now.
pub(crate) fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Fields of `/proc/PID/stat` after the `(comm)` field: [state, ppid, ...].
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Alive = exists and not a zombie (state Z) or dead (X). Not `kill -0`:
/// an unreaped child still "exists" for kill.
pub fn pid_alive(pid: u32) -> bool {
    match stat_fields(pid) {
        Some(f) => !matches!(f.first().map(String::as_str), Some("Z" | "X") | None),
        None => false,
    }
}

/// Start time (clock ticks since boot) of `pid`: with the PID it identifies a
/// process even after PID reuse.
pub(crate) fn pid_start_time(pid: u32) -> Option<u64> {
    // starttime is field 22 overall = index 19 after the comm field.
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether the command line of `pid` mentions `marker` (our instance dir):
/// the check that makes signalling a recorded PID safe.
pub fn cmdline_mentions(pid: u32, marker: &Path) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let text = String::from_utf8_lossy(&raw).replace('\0', " ");
    text.contains(&*marker.to_string_lossy())
}

/// Session id of `pid` (a detached server leads its own session).
pub fn session_id(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(3)?.parse().ok()
}

/// Whether `pid` is a zombie child of this process (exited, not reaped):
/// for tests asserting that the harness reaps what it kills.
pub fn is_unreaped_child(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| {
        f.first().map(String::as_str) == Some("Z")
            && f.get(1).map(String::as_str) == Some(&*std::process::id().to_string())
    })
}

/// Whether `pid` holds an open fd on `path` (fd hygiene checks).
pub fn holds_fd_on(pid: u32, path: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|dir| {
        dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .any(|p| p == path)
    })
}

/// Send `sig` to `pid`. Callers must own `pid` (an unreaped child of ours, or
/// a recorded PID whose cmdline was just checked).
pub fn signal(pid: u32, sig: i32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    // SAFETY: plain syscall with a positive PID; no memory is shared.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Poll `probe` until it yields `Some`, an error, or `timeout` passes.
pub fn poll_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = probe()? {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            return Err(SandboxError::Timeout {
                what: what.to_owned(),
                secs: timeout.as_secs_f64(),
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The last `max_lines` lines of a (log) file, or a note why there are none.
pub(crate) fn log_tail(path: &Path, max_lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

/// Current length of a (log) file, 0 if absent: remember it before a start
/// to look only at what that start wrote.
pub(crate) fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Whether the part of `path` written after `offset` contains `needle`.
pub(crate) fn log_contains_since(path: &Path, offset: u64, needle: &str) -> bool {
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let mut buf = Vec::new();
    f.seek(SeekFrom::Start(offset)).is_ok()
        && f.read_to_end(&mut buf).is_ok()
        && String::from_utf8_lossy(&buf).contains(needle)
}

/// Build a server command: stdin from /dev/null, stdout+stderr appended to
/// `log`, no inherited fds beyond 0-2, and its own session when `detached`.
pub(crate) fn server_command(program: &str, log: &Path, detached: bool) -> Result<Command> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| SandboxError::io(format!("open log {}", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| SandboxError::io(format!("dup log fd {}", log.display()), e))?;
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: only async-signal-safe syscalls run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Mark every fd >= 3 close-on-exec so no lock or socket of the
            // parent leaks into the server; std's own exec-error pipe is
            // already CLOEXEC and keeps working.
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if detached && libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(cmd)
}

/// One server process: an owned child (reaped by us) or a PID adopted from a
/// state file. An adopted PID is taken only if its cmdline mentions `marker`;
/// from then on its start time identifies it. The cmdline cannot: it reads
/// empty while the process exits, before /proc shows it as a zombie.
#[derive(Debug)]
pub struct ServerProc {
    name: String,
    pid: Option<u32>,
    child: Option<Child>,
    /// Start time of an adopted PID (`None` for an owned child).
    adopted_start: Option<u64>,
    marker: PathBuf,
    paused: AtomicBool,
}

impl ServerProc {
    /// Spawn `cmd`; `marker` must appear in its command line.
    pub fn spawn(name: &str, cmd: &mut Command, marker: &Path) -> Result<ServerProc> {
        let child = cmd
            .spawn()
            .map_err(|e| SandboxError::io(format!("{name}: spawn {:?}", cmd.get_program()), e))?;
        Ok(ServerProc {
            name: name.to_owned(),
            pid: Some(child.id()),
            child: Some(child),
            adopted_start: None,
            marker: marker.to_owned(),
            paused: AtomicBool::new(false),
        })
    }

    /// Adopt a recorded PID (persistent sandbox); `None` if it is not ours any more.
    pub fn adopt(name: &str, pid: u32, marker: &Path) -> Option<ServerProc> {
        let start = pid_start_time(pid)?;
        (pid_alive(pid) && cmdline_mentions(pid, marker)).then(|| ServerProc {
            name: name.to_owned(),
            pid: Some(pid),
            child: None,
            adopted_start: Some(start),
            marker: marker.to_owned(),
            paused: AtomicBool::new(false),
        })
    }

    /// Forget the child handle without killing it (detached mode).
    pub(crate) fn detach(&mut self) {
        self.child = None;
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Running and still ours: not a zombie, and (if adopted) the same start
    /// time as when adopted, so a reused PID is never taken for it.
    pub fn alive(&self) -> bool {
        self.pid
            .is_some_and(|p| pid_alive(p) && self.same_process(p))
    }

    /// Whether `pid` is still the process this handle owns or adopted.
    fn same_process(&self, pid: u32) -> bool {
        self.child.is_some() || pid_start_time(pid) == self.adopted_start
    }

    /// Signal the process if it is still ours (unreaped child, or the
    /// adopted start time matches).
    pub fn signal(&self, sig: i32) -> Result<()> {
        let Some(pid) = self.pid else {
            return Err(SandboxError::State(format!("{} is not running", self.name)));
        };
        if !self.same_process(pid) {
            return Err(SandboxError::State(format!(
                "{}: pid {pid} no longer belongs to {}",
                self.name,
                self.marker.display()
            )));
        }
        signal(pid, sig)
            .map_err(|e| SandboxError::io(format!("{}: kill({pid}, {sig})", self.name), e))
    }

    /// Signal, where a process that exited meanwhile (e.g. on the TERM just
    /// sent) is not an error.
    fn signal_unless_exited(&mut self, sig: i32) -> Result<()> {
        match self.signal(sig) {
            Err(_) if self.exited() => Ok(()),
            r => r,
        }
    }

    pub fn pause(&self) -> Result<()> {
        self.signal(libc::SIGSTOP)?;
        self.paused.store(true, Ordering::SeqCst);
        Ok(())
    }

    pub fn resume(&self) -> Result<()> {
        self.signal(libc::SIGCONT)?;
        self.paused.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Whether the process has exited; reaps an owned child. After `true`
    /// the PID is forgotten and never signalled again.
    pub fn exited(&mut self) -> bool {
        if self.pid.is_none() {
            return true;
        }
        let gone = match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => !self.alive(),
        };
        if gone {
            self.pid = None;
            self.child = None;
            self.paused.store(false, Ordering::SeqCst);
        }
        gone
    }

    /// Wait up to `timeout` for the process to exit.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> bool {
        let what = format!("{} to exit", self.name);
        poll_until(&what, timeout, || Ok(self.exited().then_some(()))).is_ok()
    }

    /// SIGKILL (works on stopped processes too) and reap.
    pub fn kill(&mut self) -> Result<()> {
        if self.exited() {
            return Ok(());
        }
        self.signal_unless_exited(libc::SIGKILL)?;
        if self.wait_exit(Duration::from_secs(30)) {
            Ok(())
        } else {
            Err(SandboxError::Timeout {
                what: format!("{} to die after SIGKILL", self.name),
                secs: 30.0,
            })
        }
    }

    /// SIGTERM + SIGCONT (a stopped process, even one paused by another
    /// process, must see the TERM), wait up to `grace`, then SIGKILL.
    pub fn terminate(&mut self, grace: Duration) -> Result<()> {
        if self.exited() {
            return Ok(());
        }
        self.signal_unless_exited(libc::SIGTERM)?;
        self.signal_unless_exited(libc::SIGCONT)?;
        self.paused.store(false, Ordering::SeqCst);
        if self.wait_exit(grace) {
            return Ok(());
        }
        self.kill()
    }
}

impl Drop for ServerProc {
    /// Owned children are killed and reaped; adopted/detached ones are left alone.
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.kill();
        }
    }
}

/// The process slot of one server (`MariaDb`, `ZkServer`): its process while
/// started, empty once stopped or killed. Dropping it kills the process
/// (SIGCONT first if paused) and reaps it, unless the server is detached.
#[derive(Debug)]
pub(crate) struct ProcSlot {
    proc: Option<ServerProc>,
    /// The server's name in "not running" errors.
    name: String,
    /// Detached servers (`sandbox up`) outlive this process.
    detached: bool,
}

impl ProcSlot {
    /// An empty slot.
    pub(crate) fn new(name: &str, detached: bool) -> ProcSlot {
        ProcSlot {
            proc: None,
            name: name.to_owned(),
            detached,
        }
    }

    /// A slot holding an adopted process, if `proc` is one (detached).
    pub(crate) fn adopted(name: &str, proc: Option<ServerProc>) -> ProcSlot {
        ProcSlot {
            proc,
            name: name.to_owned(),
            detached: true,
        }
    }

    pub(crate) fn detached(&self) -> bool {
        self.detached
    }

    /// Hold a process that just started (its child handle is forgotten when detached).
    pub(crate) fn set(&mut self, mut proc: ServerProc) {
        if self.detached {
            proc.detach();
        }
        self.proc = Some(proc);
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.proc.as_ref().and_then(ServerProc::pid)
    }

    /// Alive (a zombie counts as dead).
    pub(crate) fn is_running(&self) -> bool {
        self.proc.as_ref().is_some_and(ServerProc::alive)
    }

    /// SIGTERM, SIGKILL after `grace`; the slot is emptied.
    pub(crate) fn stop(&mut self, grace: Duration) -> Result<()> {
        self.proc.take().map_or(Ok(()), |mut p| p.terminate(grace))
    }

    /// SIGKILL and reap; the slot is emptied.
    pub(crate) fn kill(&mut self) -> Result<()> {
        self.proc.take().map_or(Ok(()), |mut p| p.kill())
    }

    /// SIGSTOP.
    pub(crate) fn pause(&self) -> Result<()> {
        self.running()?.pause()
    }

    /// SIGCONT after [`ProcSlot::pause`].
    pub(crate) fn resume(&self) -> Result<()> {
        self.running()?.resume()
    }

    fn running(&self) -> Result<&ServerProc> {
        self.proc
            .as_ref()
            .ok_or_else(|| SandboxError::State(format!("{} is not running", self.name)))
    }
}

impl Drop for ProcSlot {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            if self.detached {
                p.detach();
            } else {
                if p.is_paused() {
                    let _ = p.resume();
                }
                let _ = p.kill();
            }
        }
    }
}
