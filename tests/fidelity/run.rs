//! Running the case table: every proxied session (M) does its steps, one
//! failover happens, then each M answers its probes and a control session
//! (C) direct to the new primary does the same steps and probes. A case
//! passes when M's answers equal C's, or when M's first probe was refused
//! with 9005/9006; `stable` queries must answer the same on M before and
//! after the failover.

use std::fmt::Write as _;

use mysql_async::Conn;

use super::cases::{Case, Probe, Step};
use super::client::{refusal, same, Answer, Raw, Session, Shown};
use crate::common::{self, APP_PASS, APP_USER};

pub use crate::common::admin_opts;

pub async fn admin(port: u16) -> Session {
    Session::Async {
        conn: Conn::new(admin_opts(port)).await.expect("admin login"),
        stmts: Vec::new(),
    }
}

/// A session of the app user on `port` (the proxy's or a server's).
pub async fn open(case: &Case, port: u16) -> Session {
    if case.raw {
        let addr = format!("127.0.0.1:{port}");
        Session::Raw(
            Raw::login(&addr, APP_USER, APP_PASS, "app")
                .await
                .expect("raw login"),
        )
    } else {
        Session::Async {
            conn: Conn::new(common::app_opts(port)).await.expect("login"),
            stmts: Vec::new(),
        }
    }
}

fn sub(s: &str, tag: &str) -> String {
    s.replace("{tag}", tag)
}

fn subs(v: &[String], tag: &str) -> Vec<String> {
    v.iter().map(|s| sub(s, tag)).collect()
}

/// Run every step; the first that fails ends the setup with its description.
pub async fn run_steps(s: &mut Session, steps: &[Step], tag: &str) -> Result<(), String> {
    for (i, step) in steps.iter().enumerate() {
        let answer = match step {
            Step::Sql(q) => s.query(&sub(q, tag)).await,
            Step::Prep(q) => s.prepare(&sub(q, tag)).await,
            Step::Exec(n, p) => s.execute(*n, &subs(p, tag)).await,
            Step::ChangeUser(u, p, d) => s.change_user(u, p, d).await,
            Step::Reset => s.reset().await,
            Step::OpenCursor(n) => s.open_cursor(*n).await,
            Step::Fetch(n, k) => s.fetch(*n, *k).await,
        };
        if let Err(e) = answer {
            let answer = Err(e);
            return Err(format!(
                "step {i} `{}`: {}",
                sub(&step.to_string(), tag),
                Shown(&answer)
            ));
        }
    }
    Ok(())
}

pub async fn run_probes(
    s: &mut Session,
    probes: &[Probe],
    tag: &str,
    third: &mut Session,
) -> Vec<Answer> {
    let mut out = Vec::new();
    for p in probes {
        out.push(match p {
            Probe::Sql(q) => s.query(&sub(q, tag)).await,
            Probe::Third(q) => third.query(&sub(q, tag)).await,
            Probe::Exec(n, params) => s.execute(*n, &subs(params, tag)).await,
            Probe::Fetch(n, k) => s.fetch(*n, *k).await,
        });
    }
    out
}

pub async fn run_stable(s: &mut Session, queries: &[String], tag: &str) -> Vec<Answer> {
    let mut out = Vec::new();
    for q in queries {
        out.push(s.query(&sub(q, tag)).await);
    }
    out
}

/// What one session did in one case.
pub struct Run {
    pub setup: Result<(), String>,
    pub probes: Vec<Answer>,
}

pub enum Verdict {
    /// Migrated, and every probe answered as the control did.
    Same,
    /// The first probe got the documented refusal.
    Refused(u16),
    /// Lines of (what, M said, C said).
    Fail(Vec<[String; 3]>),
}

/// M (through the proxy) against C (direct); `stable` pairs M's answers
/// before and after the failover.
pub fn judge(case: &Case, m: &Run, c: &Run, stable: &[(Answer, Answer)]) -> Verdict {
    let mut lines = Vec::new();
    if let Err(e) = &m.setup {
        lines.push(["setup through the proxy".into(), e.clone(), "-".into()]);
    }
    if let Err(e) = &c.setup {
        lines.push(["setup of the control".into(), "-".into(), e.clone()]);
    }
    if !lines.is_empty() {
        return Verdict::Fail(lines);
    }
    if let Some(code) = m.probes.first().and_then(refusal) {
        if case.must_migrate {
            let said = Shown(&m.probes[0]).to_string();
            lines.push(["must migrate, was refused".into(), said, "-".into()]);
            return Verdict::Fail(lines);
        }
        return Verdict::Refused(code);
    }
    for (i, (p, (a, b))) in case
        .probes
        .iter()
        .zip(m.probes.iter().zip(&c.probes))
        .enumerate()
    {
        if !same(a, b) {
            lines.push([
                format!("probe {i} `{p}`"),
                Shown(a).to_string(),
                Shown(b).to_string(),
            ]);
        }
    }
    for (q, (before, after)) in case.stable.iter().zip(stable) {
        if !same(before, after) {
            lines.push([
                format!("stable `{q}`: M before vs M after"),
                format!("before: {}", Shown(before)),
                format!("after: {}", Shown(after)),
            ]);
        }
    }
    if lines.is_empty() {
        Verdict::Same
    } else {
        Verdict::Fail(lines)
    }
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "..."
    }
}

/// One line per case, then the failures as (case, what, M said, C said).
pub fn report(title: &str, verdicts: &[(&str, Verdict)]) -> (String, usize) {
    let mut out = format!("\n=== {title}: {} cases ===\n", verdicts.len());
    let mut failures = String::new();
    let mut failed = 0;
    for (name, v) in verdicts {
        let status = match v {
            Verdict::Same => "migrated, same as control".to_string(),
            Verdict::Refused(c) => format!("refused ({c})"),
            Verdict::Fail(lines) => {
                failed += 1;
                for [what, m, c] in lines {
                    let _ = writeln!(
                        failures,
                        "{name:<44} | {:<60} | M: {:<50} | C: {}",
                        cut(what, 60),
                        cut(m, 120),
                        cut(c, 120)
                    );
                }
                "FAIL".to_string()
            }
        };
        let _ = writeln!(out, "{name:<44} {status}");
    }
    if failed > 0 {
        let _ = write!(
            out,
            "\n--- {failed} failing cases ---\n{:<44} | {:<60} | M (through the proxy) | C (direct control)\n{failures}",
            "case", "what"
        );
    }
    (out, failed)
}

/// The table is usable: unique SQL-safe names, every case starts its
/// probes on the session itself (so the first probe is what meets the move).
pub fn check_table(cases: &[Case]) {
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    for c in cases {
        assert!(
            c.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{}: name is used in identifiers",
            c.name
        );
        assert!(
            !matches!(c.probes.first(), None | Some(Probe::Third(_))),
            "{}: the first probe runs on the session",
            c.name
        );
    }
}
