//! The relay's OK tap, with the ledger on (docs/ledger.md): the backend's
//! OK packets that carry session state information are held whole until
//! complete, the GTID of a commit (`last_gtid`) is recorded in the ledger,
//! and for a client that did not ask for session tracking the packet is
//! rewritten in place into the bytes a direct connection gets (no state
//! information, no SERVER_SESSION_STATE_CHANGED flag). OKs without that
//! flag, rows and every other packet pass untouched.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::acknowledged::{Gtid, Ledger};
use crate::metrics::Stats;
use crate::session::pipe::Pipe;
use mysql_zk_proxy_protocol::ok::{self, SESSION_STATE_CHANGED};
use mysql_zk_proxy_protocol::{ok_status, PacketInfo, Tracker};

/// The largest OK packet held back whole (state information is tens of
/// bytes; a larger one passes as it is, unread). At most half the
/// backend-to-client buffer, so a held packet always fits.
pub(super) const MAX_OK: usize = 16 * 1024;

/// Who the tap records for, and whether it rewrites.
pub(crate) struct OkTap<'a> {
    pub ledger: &'a Ledger,
    pub stats: &'a Stats,
    /// The backend's `host:port` and the route epoch it was reached under.
    pub server: &'a str,
    pub epoch: u64,
    pub session: u64,
    pub user: &'a Arc<str>,
    /// The client did not ask for session tracking: strip it.
    pub strip: bool,
}

/// What one relay found in the backend's bytes: OK packets with state
/// information, by their stream offset (buffer offset + [`Pipe::shifted`]).
#[derive(Debug, Default)]
pub(super) struct OkScan {
    /// Stream offset of the last packet head seen.
    pub head_at: usize,
    /// (stream offset, payload length) of the OKs completed in this read.
    pub found: Vec<(usize, usize)>,
}

impl OkScan {
    /// The head of a packet starts `head_len` bytes before `end` (a buffer
    /// offset) in a pipe shifted by `shifted`.
    pub(super) fn head(&mut self, shifted: usize, end: usize, head_len: usize) {
        self.head_at = shifted + end - head_len;
    }

    /// Before the tracker sees `p` (whose head was the last one seen): note
    /// it if it is an OK carrying state information.
    pub(super) fn packet(&mut self, p: &PacketInfo<'_>, t: &Tracker) {
        let Some(first) = p.first() else { return };
        if p.continuation || p.len > MAX_OK || !t.next_is_ok(first, p.len) {
            return;
        }
        if ok_status(p.prefix) & SESSION_STATE_CHANGED != 0 {
            self.found.push((self.head_at, p.len));
        }
    }
}

impl OkTap<'_> {
    /// Read every OK found (recording commits), then strip them when the
    /// client did not ask for tracking; closes the gaps in `pipe`.
    pub(super) fn apply(&self, pipe: &mut Pipe<'_>, scan: &mut OkScan) {
        let whole = |pipe: &Pipe<'_>, (at, len): (usize, usize)| {
            let at = at.checked_sub(pipe.shifted)?;
            (at >= pipe.start && at + 4 + len <= pipe.end).then_some(at..at + 4 + len)
        };
        for &found in &scan.found {
            let Some(r) = whole(pipe, found) else {
                continue;
            };
            let payload = &pipe.buf[r.start + 4..r.end];
            if let Some(g) = ok::last_gtid(payload).and_then(Gtid::from_bytes) {
                self.record(g);
            }
        }
        if self.strip {
            for &found in scan.found.iter().rev() {
                let Some(r) = whole(pipe, found) else {
                    continue;
                };
                let removed = strip(pipe, r);
                if scan.head_at > found.0 {
                    scan.head_at -= removed;
                }
            }
        }
        scan.found.clear();
    }

    fn record(&self, g: Gtid) {
        let (server, epoch, session) = (self.server, self.epoch, self.session);
        self.ledger.record(server, epoch, g, session, self.user);
        self.stats.acknowledged_writes.fetch_add(1, Relaxed);
    }
}

/// Rewrite the packet at `r` without its state information; the bytes
/// removed.
fn strip(pipe: &mut Pipe<'_>, r: std::ops::Range<usize>) -> usize {
    let Some(plain) = ok::without_session_state(&pipe.buf[r.start + 4..r.end]) else {
        return 0;
    };
    let seq = pipe.buf[r.start + 3];
    let mut packet = (plain.len() as u32).to_le_bytes();
    packet[3] = seq;
    let removed = r.len() - 4 - plain.len();
    pipe.buf.splice(r, packet.into_iter().chain(plain));
    pipe.end -= removed;
    pipe.scanned -= removed;
    removed
}

/// Bytes at the end of what was scanned to keep unsent: the part of a
/// packet under way that may be an OK to read or rewrite.
pub(super) fn held_tail(partial: Option<(usize, usize, Option<u8>)>, t: &Tracker) -> usize {
    match partial {
        Some((fed, _, None)) => fed,
        Some((fed, len, Some(first))) if len <= MAX_OK && t.next_is_ok(first, len) => fed,
        _ => 0,
    }
}
