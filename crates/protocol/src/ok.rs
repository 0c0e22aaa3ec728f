//! OK packets with session state information (CLIENT_SESSION_TRACK): the
//! layout of the fields, the tracked system variables they carry (the
//! `last_gtid` of a commit among them) and the packet a client that did not
//! ask for session tracking would have received from the same server.
//!
//! Layout (MariaDB 10.11, as observed): `0x00|0xFE`, affected rows
//! (lenenc), last insert id (lenenc), status (2), warnings (2), then with
//! CLIENT_SESSION_TRACK: the info (lenenc string, present when the status
//! has SERVER_SESSION_STATE_CHANGED or the info is not empty) and, with that
//! flag, the state info (lenenc length, then items `type`, lenenc `data`).
//! Without CLIENT_SESSION_TRACK the server writes the info (lenenc) only
//! when it is not empty, never state info, and never sets the flag.

use crate::read_lenenc;

/// SERVER_SESSION_STATE_CHANGED: the OK carries session state information.
pub const SESSION_STATE_CHANGED: u16 = 0x4000;

/// Session state item type of a changed system variable.
pub const TRACK_SYSTEM_VARIABLES: u8 = 0;

/// Why an OK packet could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OkError {
    #[error("not an OK packet (first byte {0:#04x})")]
    NotOk(u8),
    #[error("OK packet truncated in its {0}")]
    Truncated(&'static str),
}

/// Where the fields of one OK payload lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OkLayout {
    pub status: u16,
    /// Offset of the status flags.
    pub status_at: usize,
    /// Offset just past the warnings: where the info begins (if any).
    pub info_at: usize,
    /// The info's text range (empty when absent).
    pub info: std::ops::Range<usize>,
    /// The state info's items (inside its lenenc length), when present.
    pub state: Option<std::ops::Range<usize>>,
}

/// Read the layout of an OK payload sent to a client with CLIENT_SESSION_TRACK.
pub fn layout(p: &[u8]) -> Result<OkLayout, OkError> {
    match p.first() {
        Some(0x00 | 0xfe) => {}
        Some(&b) => return Err(OkError::NotOk(b)),
        None => return Err(OkError::Truncated("header")),
    }
    let (_, n1) = p
        .get(1..)
        .and_then(read_lenenc)
        .ok_or(OkError::Truncated("affected rows"))?;
    let (_, n2) = p
        .get(1 + n1..)
        .and_then(read_lenenc)
        .ok_or(OkError::Truncated("insert id"))?;
    let status_at = 1 + n1 + n2;
    let s = p
        .get(status_at..status_at + 4)
        .ok_or(OkError::Truncated("status"))?;
    let status = u16::from_le_bytes([s[0], s[1]]);
    let info_at = status_at + 4;
    let mut out = OkLayout {
        status,
        status_at,
        info_at,
        info: info_at..info_at,
        state: None,
    };
    if info_at == p.len() {
        return Ok(out);
    }
    let (info, rest) = lenenc_str(&p[info_at..]).ok_or(OkError::Truncated("info"))?;
    let end = p.len() - rest.len();
    out.info = end - info.len()..end;
    if status & SESSION_STATE_CHANGED != 0 && !rest.is_empty() {
        let (state, after) = lenenc_str(rest).ok_or(OkError::Truncated("state info"))?;
        let s_end = p.len() - after.len();
        out.state = Some(s_end - state.len()..s_end);
    }
    Ok(out)
}

/// One session state item: its type and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateItem<'a> {
    pub kind: u8,
    pub data: &'a [u8],
}

/// A length-encoded string at the start of `b`, and what follows it.
fn lenenc_str(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, n) = read_lenenc(b)?;
    let end = n.checked_add(usize::try_from(len).ok()?)?;
    Some((b.get(n..end)?, &b[end..]))
}

/// The items of a state info block (stops at the first malformed item).
pub fn items(state: &[u8]) -> impl Iterator<Item = StateItem<'_>> {
    let mut rest = state;
    std::iter::from_fn(move || {
        let (&kind, after) = rest.split_first()?;
        let (data, next) = lenenc_str(after)?;
        rest = next;
        Some(StateItem { kind, data })
    })
}

/// A changed system variable item's (name, value).
pub fn system_variable<'a>(item: &StateItem<'a>) -> Option<(&'a [u8], &'a [u8])> {
    if item.kind != TRACK_SYSTEM_VARIABLES {
        return None;
    }
    let (name, rest) = lenenc_str(item.data)?;
    let (value, _) = lenenc_str(rest)?;
    Some((name, value))
}

/// The value of the tracked `last_gtid` in an OK payload, if it carries one
/// (the GTID the statement's commit was written to the binlog with).
pub fn last_gtid(p: &[u8]) -> Option<&[u8]> {
    let l = layout(p).ok()?;
    let state = &p[l.state?];
    items(state)
        .filter_map(|i| system_variable(&i))
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"last_gtid"))
        .map(|(_, v)| v)
        .last()
}

/// The payload a client without CLIENT_SESSION_TRACK would have received:
/// no SERVER_SESSION_STATE_CHANGED flag, no state info, the info only when
/// it is not empty. `None` when `p` carries no state info (it is already
/// what that client would get) or cannot be read.
pub fn without_session_state(p: &[u8]) -> Option<Vec<u8>> {
    let l = layout(p).ok()?;
    if l.status & SESSION_STATE_CHANGED == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(p.len());
    out.extend_from_slice(&p[..l.info_at]);
    let status = l.status & !SESSION_STATE_CHANGED;
    out[l.status_at..l.status_at + 2].copy_from_slice(&status.to_le_bytes());
    if !l.info.is_empty() {
        out.extend_from_slice(&p[l.info_at..l.info.end]);
    }
    Some(out)
}

#[cfg(test)]
#[path = "ok_tests.rs"]
mod tests;
