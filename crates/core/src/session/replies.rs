//! What the relay does with the backend's packets: the protocol tracker and
//! the carried session state see each one, a PREPARE OK's statement id is
//! rewritten in place when the client knows it by another id, and the rows
//! of a result set stream past without being looked at one by one.

use crate::session::oks::OkScan;
use crate::session::state::CarriedState;
use crate::session::stmts;
use mysql_zk_proxy_protocol::{Frame, FrameSink, ServerEvent, Tracker};

/// The framer's sink for one read from the backend.
pub(super) struct Replies<'a> {
    tracker: &'a mut Tracker,
    state: &'a mut CarriedState,
    /// Offset in the pipe's buffer of the bytes being fed.
    base: usize,
    /// `(offset in the buffer, client id)` of statement ids to rewrite.
    pub(super) rewrites: Vec<(usize, u32)>,
    /// A reply to a command completed.
    pub(super) replied: bool,
    /// With the ledger on: where OKs with state information lie, and the
    /// pipe's shift (see [`crate::session::oks`]).
    oks: Option<(&'a mut OkScan, usize)>,
}

impl<'a> Replies<'a> {
    pub(super) fn new(tracker: &'a mut Tracker, state: &'a mut CarriedState, base: usize) -> Self {
        Replies {
            tracker,
            state,
            base,
            rewrites: Vec::new(),
            replied: false,
            oks: None,
        }
    }

    /// Note OKs with state information in `scan` (buffer offsets + `shifted`).
    pub(super) fn with_oks(mut self, scan: &'a mut OkScan, shifted: usize) -> Self {
        self.oks = Some((scan, shifted));
        self
    }
}

impl FrameSink for Replies<'_> {
    fn frame(&mut self, f: Frame<'_>) {
        match f {
            Frame::Packet(p) => {
                if let Some((scan, _)) = self.oks.as_mut() {
                    scan.packet(&p, self.tracker);
                }
                let ev = self.tracker.on_server_packet(&p);
                self.replied |= ev == ServerEvent::ResponseDone;
                self.state.on_server(ev, &p, self.tracker.status());
            }
            Frame::Head(h) => {
                if let Some((scan, shifted)) = self.oks.as_mut() {
                    scan.head(*shifted, self.base + h.end, 4 + h.prefix.len());
                }
                if !h.continuation
                    && h.prefix.first() == Some(&0)
                    && self.tracker.awaiting_prepare_ok()
                {
                    let backend_id = stmts::id_at(h.prefix);
                    let client_id = self.state.on_prepare_ok_head(h.prefix);
                    if let Some(id) = client_id.filter(|&c| Some(c) != backend_id) {
                        let at = self.base + h.end - h.prefix.len() + 1;
                        self.rewrites.push((at, id));
                    }
                }
            }
        }
    }

    /// A row changes neither the tracker (it waits for the terminator) nor
    /// the session state (which looks at the first packet of a reply only).
    fn in_rows(&self) -> bool {
        self.tracker.in_rows()
    }
}
