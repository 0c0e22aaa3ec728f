//! `KILL <id>` after a migration: a client knows its connection by the id in
//! the greeting it got, but a migrated session runs under another thread id
//! on the new primary. Every session registers the id its client saw and its
//! current (backend, thread); a KILL naming a migrated session is rewritten.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use mysql_zk_proxy_protocol::command;

#[derive(Debug, Clone)]
struct Entry {
    session: u64,
    backend: String,
    thread: u32,
}

/// Client-visible connection ids of this proxy's sessions (one per proxy).
#[derive(Debug, Default)]
pub struct KillMap {
    by_visible: Mutex<HashMap<u32, Vec<Entry>>>,
    /// Sessions whose thread differs from the id their client saw.
    moved: AtomicUsize,
    next: AtomicU64,
}

/// A session's entry; removed on drop.
pub struct Registered<'a> {
    map: &'a KillMap,
    visible: u32,
    session: u64,
    moved: bool,
}

impl KillMap {
    /// A session whose client saw `visible` in its greeting, on `backend`.
    pub fn register(&self, visible: u32, backend: &str) -> Registered<'_> {
        let session = self.next.fetch_add(1, Relaxed);
        let e = Entry {
            session,
            backend: backend.to_string(),
            thread: visible,
        };
        self.lock().entry(visible).or_default().push(e);
        Registered {
            map: self,
            visible,
            session,
            moved: false,
        }
    }

    /// Is any session running under a thread id its client does not know?
    pub(crate) fn any_moved(&self) -> bool {
        self.moved.load(Relaxed) > 0
    }

    /// The thread to kill for `visible` when asked through `backend`: only
    /// when exactly one session of this proxy answers to it there and it
    /// was moved (otherwise the id means what it says).
    pub(crate) fn translate(&self, visible: u32, backend: &str) -> Option<u32> {
        let map = self.lock();
        let mut there = map.get(&visible)?.iter().filter(|e| e.backend == backend);
        match (there.next(), there.next()) {
            (Some(e), None) if e.thread != visible => Some(e.thread),
            _ => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Vec<Entry>>> {
        self.by_visible.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Registered<'_> {
    /// The session now runs as `thread` on `backend`.
    pub fn moved(&mut self, backend: &str, thread: u32) {
        let mut map = self.map.lock();
        if let Some(e) = map
            .get_mut(&self.visible)
            .and_then(|v| v.iter_mut().find(|e| e.session == self.session))
        {
            e.backend = backend.to_string();
            e.thread = thread;
        }
        if !self.moved {
            self.moved = true;
            self.map.moved.fetch_add(1, Relaxed);
        }
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock();
        if let Some(v) = map.get_mut(&self.visible) {
            v.retain(|e| e.session != self.session);
            if v.is_empty() {
                map.remove(&self.visible);
            }
        }
        if self.moved {
            self.map.moved.fetch_sub(1, Relaxed);
        }
    }
}

/// Does this packet (header included) start a KILL: `KILL ...` text or
/// COM_PROCESS_KILL?
pub(crate) fn is_kill(packet: &[u8]) -> bool {
    match packet.get(4) {
        Some(&command::PROCESS_KILL) => true,
        Some(&command::QUERY) => keyword(skip_space(&packet[5..]), "kill").is_some(),
        _ => false,
    }
}

/// One whole KILL packet (header included) with the thread id replaced by
/// `translate(id)`, or `None` to send it as it is.
pub fn rewrite(packet: &[u8], translate: impl Fn(u32) -> Option<u32>) -> Option<Vec<u8>> {
    let payload = packet.get(4..)?;
    match *payload.first()? {
        command::PROCESS_KILL => {
            let b = payload.get(1..5)?;
            let to = translate(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))?;
            let mut out = packet.to_vec();
            out[5..9].copy_from_slice(&to.to_le_bytes());
            Some(out)
        }
        command::QUERY => {
            let (start, end) = thread_id_span(&payload[1..])?;
            let id: u32 = std::str::from_utf8(&payload[1 + start..1 + end])
                .ok()?
                .parse()
                .ok()?;
            let to = translate(id)?.to_string();
            let mut body = payload[..1 + start].to_vec();
            body.extend_from_slice(to.as_bytes());
            body.extend_from_slice(&payload[1 + end..]);
            let mut out = (body.len() as u32).to_le_bytes()[..3].to_vec();
            out.push(packet[3]);
            out.extend_from_slice(&body);
            Some(out)
        }
        _ => None,
    }
}

/// Where the thread id of `KILL [HARD|SOFT] [CONNECTION|QUERY] <id>` is;
/// `None` for `KILL QUERY ID <query id>`, `KILL USER`, or anything else.
fn thread_id_span(sql: &[u8]) -> Option<(usize, usize)> {
    let mut rest = keyword(skip_space(sql), "kill")?;
    for opt in ["hard", "soft"] {
        if let Some(r) = keyword(skip_space(rest), opt) {
            rest = r;
        }
    }
    for opt in ["connection", "query"] {
        if let Some(r) = keyword(skip_space(rest), opt) {
            rest = r;
        }
    }
    let digits = skip_space(rest);
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    let tail = skip_space(&digits[n..]);
    if n == 0 || !(tail.is_empty() || tail == b";") {
        return None;
    }
    let start = sql.len() - digits.len();
    Some((start, start + n))
}

fn skip_space(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// `text` without its leading keyword `kw` (case-insensitive, whole word).
fn keyword<'a>(text: &'a [u8], kw: &str) -> Option<&'a [u8]> {
    let head = text.get(..kw.len())?;
    let next = text.get(kw.len()).copied();
    let boundary = next.is_none_or(|c| !c.is_ascii_alphanumeric() && c != b'_');
    (head.eq_ignore_ascii_case(kw.as_bytes()) && boundary).then(|| &text[kw.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(sql: &str) -> Vec<u8> {
        let mut p = ((sql.len() + 1) as u32).to_le_bytes()[..3].to_vec();
        p.push(0);
        p.push(command::QUERY);
        p.extend_from_slice(sql.as_bytes());
        p
    }

    #[test]
    fn kill_statements_are_recognised() {
        assert!(is_kill(&query("KILL 5")));
        assert!(is_kill(&query("  kill query 5")));
        assert!(!is_kill(&query("KILLER")));
        assert!(!is_kill(&query("SELECT 'KILL 5'")));
        assert!(is_kill(&[5, 0, 0, 0, command::PROCESS_KILL, 7, 0, 0, 0]));
    }

    #[test]
    fn thread_ids_are_replaced_and_the_length_fixed() {
        let to = |id| (id == 7).then_some(12345);
        for (sql, want) in [
            ("KILL 7", "KILL 12345"),
            ("kill query 7;", "kill query 12345;"),
            ("KILL HARD CONNECTION  7", "KILL HARD CONNECTION  12345"),
        ] {
            assert_eq!(rewrite(&query(sql), to), Some(query(want)), "{sql}");
        }
        for sql in [
            "KILL 8",
            "KILL QUERY ID 7",
            "KILL USER bob",
            "KILL 7 garbage",
        ] {
            assert_eq!(rewrite(&query(sql), to), None, "{sql}");
        }
        let raw = [5, 0, 0, 0, command::PROCESS_KILL, 7, 0, 0, 0];
        let mut want = raw;
        want[5..9].copy_from_slice(&12345u32.to_le_bytes());
        assert_eq!(rewrite(&raw, to), Some(want.to_vec()));
    }

    #[test]
    fn only_a_single_moved_session_is_translated() {
        let map = KillMap::default();
        let mut a = map.register(7, "old:1");
        assert_eq!(
            map.translate(7, "old:1"),
            None,
            "not moved: the id is right"
        );
        a.moved("new:2", 40);
        assert!(map.any_moved());
        assert_eq!(map.translate(7, "new:2"), Some(40));
        assert_eq!(map.translate(7, "old:1"), None);
        let _b = map.register(7, "new:2");
        assert_eq!(map.translate(7, "new:2"), None, "ambiguous: left alone");
        drop(a);
        assert!(!map.any_moved());
    }
}
