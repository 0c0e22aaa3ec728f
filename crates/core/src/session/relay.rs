//! The relay: bytes both ways as they arrive, unchanged, with every packet
//! shown to the protocol tracker. One future owns both sockets and a bounded
//! buffer per direction; each direction reads only when its buffer has room
//! (backpressure) and neither direction ever waits on the other (pipelining
//! clients cannot deadlock it). Client commands leave one at a time: a
//! command pipelined behind an outstanding reply waits in the buffer, and
//! the fence is asked before every command leaves.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use tokio_util::sync::CancellationToken;

use crate::metrics::{SessionGauge, SessionState, Stats};
use crate::session::buffers::BufferPool;
use crate::session::oks::{self, OkScan, OkTap};
use crate::session::pipe::{Filled, Pipe};
use crate::session::quiet::Quiet;
use crate::session::replies::Replies;
use crate::session::state::{CarriedState, CAPTURED_COMMANDS, MAX_CAPTURE};
use crate::session::stmts;
use crate::session::stream::Stream;
use crate::session::timers::{Expired, SessionTimers};
use mysql_zk_proxy_protocol::framer::payload_len;
use mysql_zk_proxy_protocol::tracker::ClientEvent;
use mysql_zk_proxy_protocol::{Frame, Tracker};

/// Client → backend buffer (commands are small; LOAD DATA streams through).
pub(crate) const UP_BUF: usize = 16 * 1024;
/// Backend → client buffer (result sets).
pub(crate) const DOWN_BUF: usize = 32 * 1024;

/// Why the relay stopped.
#[derive(Debug)]
pub(crate) enum RelayEnd {
    /// The client closed its side (normally after COM_QUIT).
    ClientClosed,
    /// The backend closed its side; everything it sent was delivered.
    BackendClosed,
    ClientError(io::Error),
    BackendError(io::Error),
    /// A stop signal fired and the session reached the point it asked for,
    /// with every byte read so far delivered and no client bytes read past it.
    Stopped(StopPoint),
    /// A session deadline passed (no login in time, idle too long at rest).
    TimedOut(Expired),
    /// A command was held, unsent, for the session to rewrite
    /// ([`Hold::Rewrite`]); no reply is outstanding.
    Held,
}

/// Why the fence holds a new command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The route moved: the command goes to the next backend.
    Moved,
    /// The session rewrites the command first (statement types, KILL ids).
    Rewrite,
}

/// Asked before every command leaves (no reply is outstanding then): its
/// first bytes, and whether the session is at rest.
pub type Fence<'a> = &'a (dyn Fn(&[u8], bool) -> Option<Hold> + Send + Sync);

/// Where a stopped relay hands the session back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopPoint {
    /// No reply outstanding, no transaction, no open cursor.
    AtRest,
    /// No reply outstanding (a transaction may be open).
    Idle,
}

/// Requests to stop the relay at a safe point. The relay keeps relaying until
/// the point is reached, so a statement in flight always completes.
#[derive(Debug, Clone, Default)]
pub struct StopSignals {
    /// Stop at the next rest point (failover of an idle session, drain).
    pub at_rest: CancellationToken,
    /// Stop as soon as no reply is outstanding, even inside a transaction
    /// (drain deadline passed).
    pub when_idle: CancellationToken,
}

/// The relay between one client and its backend.
pub(crate) struct Relay<'a> {
    client: &'a mut Stream,
    backend: &'a mut Stream,
    up: Pipe<'a>,
    down: Pipe<'a>,
    tracker: &'a mut Tracker,
    state: &'a mut CarriedState,
    stats: &'a Stats,
    gauge: &'a mut SessionGauge,
    /// Asked before a new command is forwarded with no reply outstanding.
    fence: Option<Fence<'a>>,
    /// A command was held by the fence: client bytes in `up` stay unsent.
    fenced: Option<Hold>,
    /// The first client command was preloaded after a rewrite: the fence
    /// does not ask for that rewrite again.
    vetted: bool,
    /// Called once, when the first reply through this relay completes.
    first_reply: Option<&'a (dyn Fn() + Send + Sync)>,
    timers: Option<SessionTimers>,
    /// Reads from the client so far (activity marker for the idle timer).
    client_reads: u64,
    /// With the ledger on: the OK tap and what it found.
    oks: Option<(OkTap<'a>, OkScan)>,
}

impl<'a> Relay<'a> {
    /// A relay for a logged-in session; `tracker` and `state` are the
    /// session's own and outlive the relay (a session runs one relay per
    /// backend). Buffers come from `buffers` while bytes are in flight.
    /// Bytes already read go in with [`Relay::preload`].
    pub fn new(
        client: &'a mut Stream,
        backend: &'a mut Stream,
        tracker: &'a mut Tracker,
        state: &'a mut CarriedState,
        stats: &'a Stats,
        gauge: &'a mut SessionGauge,
        buffers: &'a BufferPool,
    ) -> Self {
        let mut up = Pipe::new(UP_BUF, buffers);
        up.framer.capture(CAPTURED_COMMANDS, MAX_CAPTURE);
        let mut down = Pipe::new(DOWN_BUF, buffers);
        // statement ids are rewritten in packet heads once they differ
        up.hold_heads = state.stmts.translating();
        down.hold_heads = state.stmts.translating();
        Relay {
            client,
            backend,
            up,
            down,
            tracker,
            state,
            stats,
            gauge,
            fence: None,
            fenced: None,
            vetted: false,
            first_reply: None,
            timers: None,
            client_reads: 0,
            oks: None,
        }
    }

    /// Read commit GTIDs from the backend's OKs into the ledger (and strip
    /// state information the client did not ask for), see [`crate::session::oks`].
    pub(crate) fn with_oks(mut self, tap: OkTap<'a>) -> Self {
        self.down.hold_heads = true;
        self.oks = Some((tap, OkScan::default()));
        self
    }

    /// Enforce the idle timeout (and take the handshake latency sample) of `timers`.
    pub(crate) fn with_timers(mut self, timers: Option<SessionTimers>) -> Self {
        self.timers = timers;
        self
    }

    /// The timers, for the next relay after this one ends.
    pub(crate) fn take_timers(&mut self) -> Option<SessionTimers> {
        self.timers.take()
    }

    /// Ask `fence` before forwarding each command. [`Hold::Moved`] stops
    /// the relay as [`StopPoint::AtRest`] (or [`StopPoint::Idle`] inside a
    /// transaction or with a cursor open), [`Hold::Rewrite`] as
    /// [`RelayEnd::Held`]; the command stays unsent
    /// ([`Relay::unsent_client_bytes`]).
    pub(crate) fn with_fence(mut self, fence: Fence<'a>) -> Self {
        self.fence = Some(fence);
        self
    }

    /// Run `f` once, when the first reply through this relay completes.
    pub(crate) fn on_first_reply(mut self, f: &'a (dyn Fn() + Send + Sync)) -> Self {
        self.first_reply = Some(f);
        self
    }

    /// Client bytes read but not sent (a command held by the fence).
    pub(crate) fn unsent_client_bytes(&self) -> Vec<u8> {
        self.up.buf[self.up.start..self.up.end].to_vec()
    }

    /// Queue bytes already read from either side (they are scanned and
    /// relayed like any other). Each must fit its buffer.
    pub(crate) fn preload(&mut self, from_client: &[u8], from_backend: &[u8]) {
        let r = self.down.push(from_backend);
        self.scan_server_range(r);
        self.up.push(from_client);
        self.vetted = !from_client.is_empty();
        self.advance_client();
        self.update_gauge();
    }

    /// Relay until one side closes or fails, or until a stop signal fired and
    /// its stop point is reached.
    pub async fn run(&mut self, stop: &StopSignals) -> RelayEnd {
        // polled only when they fire (not on every packet); latched once they did
        let mut at_rest = Quiet::new(stop.at_rest.cancelled());
        let mut when_idle = Quiet::new(stop.when_idle.cancelled());
        let (mut rest_asked, mut idle_asked) = (false, false);
        poll_fn(|cx| {
            idle_asked = idle_asked || Pin::new(&mut when_idle).poll(cx).is_ready();
            rest_asked = rest_asked || Pin::new(&mut at_rest).poll(cx).is_ready();
            let wanted = if idle_asked {
                Some(StopPoint::Idle)
            } else if rest_asked {
                Some(StopPoint::AtRest)
            } else {
                None
            };
            match self.poll_relay(cx, wanted) {
                Poll::Pending => self.poll_timers(cx),
                done => done,
            }
        })
        .await
    }

    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Poll<RelayEnd> {
        let at_rest = self.reached(StopPoint::AtRest);
        match self.timers.as_mut() {
            Some(t) => t
                .poll(cx, true, at_rest, self.client_reads, self.stats)
                .map(RelayEnd::TimedOut),
            None => Poll::Pending,
        }
    }

    /// Nothing buffered either way, no packet half seen, and (per `point`)
    /// no reply outstanding / no transaction.
    fn reached(&self, point: StopPoint) -> bool {
        let quiet = self.up.is_empty()
            && self.down.is_empty()
            && self.up.framer.at_logical_boundary()
            && self.down.framer.at_logical_boundary();
        quiet
            && match point {
                StopPoint::AtRest => self.tracker.at_rest(),
                StopPoint::Idle => self.tracker.outstanding() == 0,
            }
    }

    fn poll_relay(&mut self, cx: &mut Context<'_>, stop: Option<StopPoint>) -> Poll<RelayEnd> {
        // A read that found nothing registered its wake-up: it is not tried
        // again in this poll (each try would register it again).
        let (mut client_waits, mut backend_waits) = (false, false);
        loop {
            if let Some(point) = stop.filter(|p| self.reached(*p)) {
                return Poll::Ready(RelayEnd::Stopped(point));
            }
            let sent = self.up.start == self.up.scanned;
            if let Some(hold) = self.fenced.filter(|_| sent && self.down.is_empty()) {
                return Poll::Ready(match hold {
                    Hold::Moved if self.tracker.at_rest() => RelayEnd::Stopped(StopPoint::AtRest),
                    Hold::Moved => RelayEnd::Stopped(StopPoint::Idle),
                    Hold::Rewrite => RelayEnd::Held,
                });
            }
            let mut progress = false;
            if self.up.has_output(self.backend) {
                match self.up.flush(cx, self.backend) {
                    Ok(p) => progress |= p,
                    Err(e) => return Poll::Ready(RelayEnd::BackendError(e)),
                }
            }
            if self.down.has_output(self.client) {
                match self.down.flush(cx, self.client) {
                    Ok(p) => progress |= p,
                    Err(e) => return Poll::Ready(RelayEnd::ClientError(e)),
                }
            }
            // while fenced, hold everything the client sends until the session moves
            if self.fenced.is_none() && !client_waits {
                match self.up.fill(cx, self.client) {
                    Ok(Filled::Bytes(r)) => {
                        progress = true;
                        self.client_reads += 1;
                        count(&self.stats.bytes_client_to_backend, r.len());
                    }
                    Ok(Filled::Waiting) => client_waits = true,
                    Ok(Filled::Full) => {}
                    Err(e) => return Poll::Ready(RelayEnd::ClientError(e)),
                }
            }
            if !backend_waits {
                match self.down.fill(cx, self.backend) {
                    Ok(Filled::Bytes(r)) => {
                        progress = true;
                        self.scan_server(r);
                    }
                    Ok(Filled::Waiting) => backend_waits = true,
                    Ok(Filled::Full) => {}
                    Err(e) => return Poll::Ready(RelayEnd::BackendError(e)),
                }
            }
            if self.up.scanned < self.up.end {
                progress |= self.advance_client();
            }
            if self.up.eof && self.up.is_empty() && self.fenced.is_none() {
                return Poll::Ready(RelayEnd::ClientClosed);
            }
            if self.down.eof && self.down.is_empty() {
                return Poll::Ready(RelayEnd::BackendClosed);
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Show the client's bytes to the framer one packet at a time, as far
    /// as they may go: a command starts only when no reply is outstanding
    /// and the fence lets it. Whether anything was scanned.
    fn advance_client(&mut self) -> bool {
        let from = self.up.scanned;
        while self.fenced.is_none() && self.up.scanned < self.up.end {
            let at = self.up.scanned;
            if self.up.framer.at_logical_boundary() && self.tracker.expects_command() {
                // pipelined behind a reply, too little to judge, or the
                // backend already closed: the command waits, unsent
                if self.tracker.outstanding() > 0 || !self.head_ready(at) || self.down.eof {
                    break;
                }
                self.fenced = self.hold_for(at);
                self.vetted = false;
                if self.fenced.is_some() {
                    break;
                }
            }
            let n = self.up.framer.packet_end(&self.up.buf[at..self.up.end]);
            self.scan_client_range(at..at + n);
            self.up.scanned = at + n;
        }
        if self.up.scanned == from {
            return false;
        }
        self.update_gauge();
        true
    }

    /// Enough of the command at `at` arrived for the fence to judge it:
    /// its header and first bytes (a statement id), or all of it.
    fn head_ready(&self, at: usize) -> bool {
        let have = self.up.end - at;
        if self.up.eof || have >= 4 + 5 {
            return true;
        }
        have >= 4 && have >= 4 + payload_len(&self.up.buf[at..at + 4])
    }

    /// A command is about to leave: does the fence (or a statement needing
    /// its types) hold it?
    fn hold_for(&self, at: usize) -> Option<Hold> {
        let bytes = &self.up.buf[at..self.up.end];
        let hold = self.fence.and_then(|f| f(bytes, self.tracker.at_rest()));
        let hold = hold.or_else(|| self.needs_types(bytes).then_some(Hold::Rewrite));
        // a preloaded command was rewritten already
        hold.filter(|h| !(self.vetted && *h == Hold::Rewrite))
    }

    /// An EXECUTE of a statement re-prepared by a migration, which the
    /// new backend has no parameter types for yet.
    fn needs_types(&self, packet: &[u8]) -> bool {
        packet.get(4) == Some(&mysql_zk_proxy_protocol::command::STMT_EXECUTE)
            && stmts::id_at(&packet[4..]).is_some_and(|id| self.state.stmts.needs_types(id))
    }

    fn scan_client_range(&mut self, r: std::ops::Range<usize>) {
        let Pipe {
            buf,
            framer,
            hold_heads,
            ..
        } = &mut self.up;
        let (tracker, state, stats) = (&mut *self.tracker, &mut *self.state, self.stats);
        let base = r.start;
        let mut rewrites = Vec::new();
        let mut on_frame = |f: Frame<'_>| match f {
            Frame::Packet(p) => {
                let ev = tracker.on_client_packet(&p);
                if let ClientEvent::Command(c) | ClientEvent::NoReply(c) = ev {
                    stats.ops.count_command(c);
                }
                state.on_client(ev, &p);
            }
            Frame::Head(h) => {
                if !h.continuation && names_statement(&h) && tracker.expects_command() {
                    let id = stmts::id_at(h.prefix).unwrap_or(stmts::UNKNOWN_ID);
                    let to = state.stmts.to_backend(id);
                    if to != id {
                        rewrites.push((base + h.end - h.prefix.len() + 1, to));
                    }
                }
            }
        };
        if *hold_heads {
            framer.feed_with_heads(&buf[r], on_frame);
            apply_rewrites(buf, &rewrites);
        } else {
            framer.feed(&buf[r], |p| on_frame(Frame::Packet(p)));
        }
    }

    fn scan_server(&mut self, r: std::ops::Range<usize>) {
        count(&self.stats.bytes_backend_to_client, r.len());
        self.scan_server_range(r);
        self.update_gauge();
    }

    fn scan_server_range(&mut self, r: std::ops::Range<usize>) {
        let shifted = self.down.shifted;
        let Pipe {
            buf,
            framer,
            hold_heads,
            scanned,
            ..
        } = &mut self.down;
        *scanned = r.end;
        let mut sink = Replies::new(&mut *self.tracker, &mut *self.state, r.start);
        if let Some((_, scan)) = self.oks.as_mut() {
            sink = sink.with_oks(scan, shifted);
        }
        if *hold_heads {
            framer.feed_frames::<true>(&buf[r], &mut sink);
            apply_rewrites(buf, &sink.rewrites);
        } else {
            framer.feed_frames::<false>(&buf[r], &mut sink);
        }
        let replied = sink.replied;
        if let Some((tap, scan)) = self.oks.as_mut() {
            tap.apply(&mut self.down, scan);
            let partial = self.down.framer.partial_packet();
            self.down.held_tail = oks::held_tail(partial, self.tracker);
        }
        if replied {
            if let Some(f) = self.first_reply.take() {
                f();
            }
        }
    }

    fn update_gauge(&mut self) {
        let state = if self.tracker.at_rest() {
            SessionState::Idle
        } else {
            SessionState::Busy
        };
        self.gauge.set(state);
    }
}

/// The head of a client packet that names a prepared statement.
fn names_statement(h: &mysql_zk_proxy_protocol::Head<'_>) -> bool {
    h.prefix.len() >= 5 && stmts::names_statement(h.prefix[0])
}

/// Write statement ids in place: `(offset of the id in buf, new id)`.
fn apply_rewrites(buf: &mut [u8], rewrites: &[(usize, u32)]) {
    for &(at, id) in rewrites {
        buf[at..at + 4].copy_from_slice(&id.to_le_bytes());
    }
}

fn count(counter: &AtomicU64, n: usize) {
    if n > 0 {
        counter.fetch_add(n as u64, Relaxed);
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
