//! How the drill changes the primary: any command (`--switch-cmd`, run
//! with `sh -c`), a program with its arguments (the sandbox's
//! `mysql-zk-proxy-sandbox switchover`), or, for embedding and tests, an
//! async function.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use serde::Serialize;

/// A switchover run as an async function: `Ok(summary)` or `Err(reason)`.
pub(crate) type SwitchFn =
    Box<dyn FnMut() -> Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send>;

/// One way to perform a switchover.
pub enum Switcher {
    /// `program args...`, no shell: exit status 0 means it succeeded.
    Exec { program: PathBuf, args: Vec<String> },
    /// `sh -c CMD`: exit status 0 means the switchover succeeded.
    Command(String),
    /// In-process (tests, embedding).
    Function(SwitchFn),
}

impl std::fmt::Debug for Switcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// What one switchover run did.
#[derive(Debug, Clone, Serialize)]
pub struct SwitchRun {
    pub ok: bool,
    /// The exit status (`exit 0`, `signal 9`, ...) or `function`.
    pub status: String,
    /// The command's output (stdout, then stderr), trimmed to its last lines.
    pub output: String,
    #[serde(skip)]
    pub wall: Duration,
}

/// Keep at most this many trailing lines of a command's output.
const OUTPUT_LINES: usize = 6;

impl Switcher {
    /// How the report names it.
    pub fn describe(&self) -> String {
        match self {
            Switcher::Exec { program, args } => {
                let mut s = program.display().to_string();
                for a in args {
                    s.push(' ');
                    s.push_str(a);
                }
                s
            }
            Switcher::Command(cmd) => format!("sh -c {cmd:?}"),
            Switcher::Function(_) => "in-process function".into(),
        }
    }

    /// Perform one switchover and time it.
    pub async fn run(&mut self) -> SwitchRun {
        let t = Instant::now();
        let mut run = match self {
            Switcher::Exec { program, args } => {
                let mut cmd = tokio::process::Command::new(program);
                cmd.args(args.iter());
                command(cmd).await
            }
            Switcher::Command(line) => {
                let mut cmd = tokio::process::Command::new("sh");
                cmd.arg("-c").arg(line.as_str());
                command(cmd).await
            }
            Switcher::Function(f) => match f().await {
                Ok(out) => SwitchRun {
                    ok: true,
                    status: "ok".into(),
                    output: out,
                    wall: Duration::ZERO,
                },
                Err(e) => SwitchRun {
                    ok: false,
                    status: "error".into(),
                    output: e,
                    wall: Duration::ZERO,
                },
            },
        };
        run.wall = t.elapsed();
        run
    }
}

/// Run a child to completion (stdin closed, output captured).
async fn command(mut cmd: tokio::process::Command) -> SwitchRun {
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    match cmd.output().await {
        Ok(out) => {
            let text = [out.stdout, out.stderr]
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect::<Vec<_>>()
                .join("");
            SwitchRun {
                ok: out.status.success(),
                status: describe_status(out.status),
                output: tail(&text, OUTPUT_LINES),
                wall: Duration::ZERO,
            }
        }
        Err(e) => SwitchRun {
            ok: false,
            status: "not started".into(),
            output: e.to_string(),
            wall: Duration::ZERO,
        },
    }
}

fn describe_status(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => "unknown".into(),
    }
}

/// The last `n` non-empty lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_command_reports_its_status_and_output() {
        let mut ok = Switcher::Command("echo one; echo two >&2".into());
        let r = ok.run().await;
        assert!(r.ok, "{r:?}");
        assert_eq!(
            (r.status.as_str(), r.output.as_str()),
            ("exit 0", "one\ntwo")
        );
        let r = Switcher::Command("echo no; exit 3".into()).run().await;
        assert!(!r.ok);
        assert_eq!(r.status, "exit 3");
        let mut exec = Switcher::Exec {
            program: "echo".into(),
            args: vec!["a b".into(), "c".into()],
        };
        assert_eq!(exec.describe(), "echo a b c");
        let r = exec.run().await;
        assert_eq!((r.ok, r.output.as_str()), (true, "a b c"));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("", 2), "");
    }
}
