//! The relay: bytes both ways as they arrive, unchanged, with every packet
//! shown to the protocol tracker. One future owns both sockets and a bounded
//! buffer per direction; each direction reads only when its buffer has room
//! (backpressure) and neither direction ever waits on the other (pipelining
//! clients cannot deadlock it).

use std::future::{poll_fn, Future};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::metrics::{SessionGauge, SessionState, Stats};
use crate::protocol::tracker::ClientEvent;
use crate::protocol::{ServerEvent, Tracker};
use crate::session::pipe::Pipe;
use crate::session::state::{CarriedState, CAPTURED_COMMANDS, MAX_CAPTURE};
use crate::session::timers::{Expired, SessionTimers};

/// Client → backend buffer (commands are small; LOAD DATA streams through).
const UP_BUF: usize = 16 * 1024;
/// Backend → client buffer (result sets).
const DOWN_BUF: usize = 32 * 1024;

/// Why the relay stopped.
#[derive(Debug)]
pub enum RelayEnd {
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
}

/// Where a stopped relay hands the session back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPoint {
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
pub struct Relay<'a> {
    client: &'a mut TcpStream,
    backend: &'a mut TcpStream,
    up: Pipe,
    down: Pipe,
    tracker: &'a mut Tracker,
    state: &'a mut CarriedState,
    stats: &'a Stats,
    gauge: &'a mut SessionGauge,
    /// Asked before a new command is forwarded from rest: true = the route
    /// moved, hold the command (it goes to the next backend instead).
    fence: Option<&'a (dyn Fn() -> bool + Send + Sync)>,
    /// A command was held by the fence: client bytes in `up` stay unsent.
    fenced: bool,
    /// Called once, when the first reply through this relay completes.
    first_reply: Option<&'a (dyn Fn() + Send + Sync)>,
    timers: Option<SessionTimers>,
    /// Reads from the client so far (activity marker for the idle timer).
    client_reads: u64,
}

impl<'a> Relay<'a> {
    /// A relay for a logged-in session; `tracker` and `state` are the
    /// session's own and outlive the relay (a session runs one relay per
    /// backend). Bytes already read go in with [`Relay::preload`].
    pub fn new(
        client: &'a mut TcpStream,
        backend: &'a mut TcpStream,
        tracker: &'a mut Tracker,
        state: &'a mut CarriedState,
        stats: &'a Stats,
        gauge: &'a mut SessionGauge,
    ) -> Self {
        let mut up = Pipe::new(UP_BUF);
        up.framer.capture(CAPTURED_COMMANDS, MAX_CAPTURE);
        Relay {
            client,
            backend,
            up,
            down: Pipe::new(DOWN_BUF),
            tracker,
            state,
            stats,
            gauge,
            fence: None,
            fenced: false,
            first_reply: None,
            timers: None,
            client_reads: 0,
        }
    }

    /// Enforce the idle timeout (and take the handshake latency sample) of `timers`.
    pub fn with_timers(mut self, timers: Option<SessionTimers>) -> Self {
        self.timers = timers;
        self
    }

    /// The timers, for the next relay after this one ends.
    pub fn take_timers(&mut self) -> Option<SessionTimers> {
        self.timers.take()
    }

    /// Check `moved` before forwarding a command that starts at rest; when it
    /// says the route moved, stop (as [`StopPoint::AtRest`]) without sending it.
    pub fn with_fence(mut self, moved: &'a (dyn Fn() -> bool + Send + Sync)) -> Self {
        self.fence = Some(moved);
        self
    }

    /// Run `f` once, when the first reply through this relay completes.
    pub fn on_first_reply(mut self, f: &'a (dyn Fn() + Send + Sync)) -> Self {
        self.first_reply = Some(f);
        self
    }

    /// Client bytes read but not sent (a command held by the fence).
    pub fn unsent_client_bytes(&self) -> Vec<u8> {
        self.up.buf[self.up.start..self.up.end].to_vec()
    }

    /// Queue bytes already read from either side (they are scanned and
    /// relayed like any other). Each must fit its buffer.
    pub fn preload(&mut self, from_client: &[u8], from_backend: &[u8]) {
        let r = self.up.push(from_client);
        self.scan_client_range(r);
        let r = self.down.push(from_backend);
        self.scan_server_range(r);
        self.update_gauge();
    }

    /// Relay until one side closes or fails, or until a stop signal fired and
    /// its stop point is reached.
    pub async fn run(&mut self, stop: &StopSignals) -> RelayEnd {
        let at_rest = stop.at_rest.cancelled();
        let when_idle = stop.when_idle.cancelled();
        tokio::pin!(at_rest, when_idle);
        poll_fn(|cx| {
            let wanted = if when_idle.as_mut().poll(cx).is_ready() {
                Some(StopPoint::Idle)
            } else if at_rest.as_mut().poll(cx).is_ready() {
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
        loop {
            if let Some(point) = stop.filter(|p| self.reached(*p)) {
                return Poll::Ready(RelayEnd::Stopped(point));
            }
            if self.fenced && self.down.is_empty() {
                return Poll::Ready(RelayEnd::Stopped(StopPoint::AtRest));
            }
            let mut progress = false;
            if !self.fenced {
                match self.up.flush(cx, self.backend) {
                    Ok(p) => progress |= p,
                    Err(e) => return Poll::Ready(RelayEnd::BackendError(e)),
                }
            }
            match self.down.flush(cx, self.client) {
                Ok(p) => progress |= p,
                Err(e) => return Poll::Ready(RelayEnd::ClientError(e)),
            }
            if self.fenced {
                // hold everything the client sends until the session moves
            } else {
                match self.up.fill(cx, self.client) {
                    Ok(Some(r)) if self.hold_for_fence(&r) => {
                        self.fenced = true;
                        progress = true;
                        self.client_reads += 1;
                    }
                    Ok(Some(r)) => {
                        progress = true;
                        self.client_reads += 1;
                        self.scan_client(r);
                    }
                    Ok(None) => {}
                    Err(e) => return Poll::Ready(RelayEnd::ClientError(e)),
                }
            }
            match self.down.fill(cx, self.backend) {
                Ok(Some(r)) => {
                    progress = true;
                    self.scan_server(r);
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(RelayEnd::BackendError(e)),
            }
            if self.up.eof && self.up.is_empty() && !self.fenced {
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

    /// A new command starts at rest (nothing else unsent) and the route moved.
    fn hold_for_fence(&self, r: &std::ops::Range<usize>) -> bool {
        !r.is_empty()
            && r.start == self.up.start
            && self.tracker.at_rest()
            && self.up.framer.at_logical_boundary()
            && self.fence.is_some_and(|moved| moved())
    }

    fn scan_client(&mut self, r: std::ops::Range<usize>) {
        count(&self.stats.bytes_client_to_backend, r.len());
        self.scan_client_range(r);
        self.update_gauge();
    }

    fn scan_client_range(&mut self, r: std::ops::Range<usize>) {
        let Pipe { buf, framer, .. } = &mut self.up;
        let (tracker, state, stats) = (&mut *self.tracker, &mut *self.state, self.stats);
        framer.feed(&buf[r], |p| {
            let ev = tracker.on_client_packet(&p);
            if let ClientEvent::Command(c) | ClientEvent::NoReply(c) = ev {
                stats.ops.count_command(c);
            }
            state.on_client(ev, &p);
        });
    }

    fn scan_server(&mut self, r: std::ops::Range<usize>) {
        count(&self.stats.bytes_backend_to_client, r.len());
        self.scan_server_range(r);
        self.update_gauge();
    }

    fn scan_server_range(&mut self, r: std::ops::Range<usize>) {
        let Pipe { buf, framer, .. } = &mut self.down;
        let (tracker, state) = (&mut *self.tracker, &mut *self.state);
        let mut replied = false;
        framer.feed(&buf[r], |p| {
            let ev = tracker.on_server_packet(&p);
            replied |= ev == ServerEvent::ResponseDone;
            state.on_server(ev, &p);
        });
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

fn count(counter: &AtomicU64, n: usize) {
    if n > 0 {
        counter.fetch_add(n as u64, Relaxed);
    }
}
