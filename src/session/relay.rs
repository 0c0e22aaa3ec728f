//! The relay: bytes both ways as they arrive, unchanged, with every packet
//! shown to the protocol tracker. One future owns both sockets and a bounded
//! buffer per direction; each direction reads only when its buffer has room
//! (backpressure) and neither direction ever waits on the other (pipelining
//! clients cannot deadlock it).

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::metrics::{SessionGauge, SessionState, Stats};
use crate::protocol::tracker::ClientEvent;
use crate::protocol::{Framer, ServerEvent, Tracker};
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
    /// The client sent an SSL request although the greeting did not offer TLS.
    SslRequested,
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

/// One direction's buffer: bytes in `buf[start..end]` are read but not yet written.
struct Pipe {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    framer: Framer,
}

impl Pipe {
    fn new(size: usize) -> Self {
        Pipe {
            buf: vec![0u8; size].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            framer: Framer::new(),
        }
    }
    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Write what is buffered. Ok(true) if anything was written.
    fn flush(&mut self, cx: &mut Context<'_>, dst: &mut TcpStream) -> io::Result<bool> {
        let mut wrote = false;
        while !self.is_empty() {
            match Pin::new(&mut *dst).poll_write(cx, &self.buf[self.start..self.end]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.start += n;
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        if self.is_empty() {
            self.start = 0;
            self.end = 0;
        }
        Ok(wrote)
    }

    /// Read into the free space. Ok(Some(range)) when bytes (or EOF: empty
    /// range) arrived, Ok(None) when nothing is ready or there is no room.
    fn fill(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut TcpStream,
    ) -> io::Result<Option<std::ops::Range<usize>>> {
        if self.eof || self.end == self.buf.len() {
            return Ok(None);
        }
        let mut rb = ReadBuf::new(&mut self.buf[self.end..]);
        match Pin::new(&mut *src).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                let range = self.end..self.end + n;
                self.end += n;
                self.eof = n == 0;
                Ok(Some(range))
            }
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => Ok(None),
        }
    }
}

/// The relay between one client and its backend.
pub struct Relay<'a> {
    client: &'a mut TcpStream,
    backend: &'a mut TcpStream,
    up: Pipe,
    down: Pipe,
    pub tracker: Tracker,
    stats: &'a Stats,
    gauge: &'a mut SessionGauge,
    logged_in: bool,
    auth_failed: bool,
    ssl_requested: bool,
    timers: Option<SessionTimers>,
    /// Reads from the client so far (activity marker for the idle timer).
    client_reads: u64,
}

impl<'a> Relay<'a> {
    pub fn new(
        client: &'a mut TcpStream,
        backend: &'a mut TcpStream,
        tracker: Tracker,
        stats: &'a Stats,
        gauge: &'a mut SessionGauge,
    ) -> Self {
        Relay {
            client,
            backend,
            up: Pipe::new(UP_BUF),
            down: Pipe::new(DOWN_BUF),
            tracker,
            stats,
            gauge,
            logged_in: false,
            auth_failed: false,
            ssl_requested: false,
            timers: None,
            client_reads: 0,
        }
    }

    /// Enforce the login deadline and idle timeout of `timers`.
    pub fn with_timers(mut self, timers: SessionTimers) -> Self {
        self.timers = Some(timers);
        self
    }

    /// The login ended with an ERR from the backend.
    pub fn auth_failed(&self) -> bool {
        self.auth_failed
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
                .poll(cx, self.logged_in, at_rest, self.client_reads, self.stats)
                .map(RelayEnd::TimedOut),
            None => Poll::Pending,
        }
    }

    /// Nothing buffered either way, no packet half seen, and (per `point`)
    /// no reply outstanding / no transaction.
    fn reached(&self, point: StopPoint) -> bool {
        let quiet = self.logged_in
            && self.up.is_empty()
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
            let mut progress = false;
            match self.up.flush(cx, self.backend) {
                Ok(p) => progress |= p,
                Err(e) => return Poll::Ready(RelayEnd::BackendError(e)),
            }
            match self.down.flush(cx, self.client) {
                Ok(p) => progress |= p,
                Err(e) => return Poll::Ready(RelayEnd::ClientError(e)),
            }
            match self.up.fill(cx, self.client) {
                Ok(Some(r)) => {
                    progress = true;
                    self.client_reads += 1;
                    self.scan_client(r);
                    if self.ssl_requested {
                        return Poll::Ready(RelayEnd::SslRequested);
                    }
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(RelayEnd::ClientError(e)),
            }
            match self.down.fill(cx, self.backend) {
                Ok(Some(r)) => {
                    progress = true;
                    self.scan_server(r);
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(RelayEnd::BackendError(e)),
            }
            if self.up.eof && self.up.is_empty() {
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

    fn scan_client(&mut self, r: std::ops::Range<usize>) {
        count(&self.stats.bytes_client_to_backend, r.len());
        let Pipe { buf, framer, .. } = &mut self.up;
        let (tracker, stats) = (&mut self.tracker, self.stats);
        let mut ssl = false;
        framer.feed(&buf[r], |p| match tracker.on_client_packet(&p) {
            ClientEvent::HandshakeResponse { ssl_request: true } => ssl = true,
            ClientEvent::Command(c) | ClientEvent::NoReply(c) => stats.ops.count_command(c),
            _ => {}
        });
        if ssl {
            // Never forward an SSL request: the backend would wait for TLS.
            self.ssl_requested = true;
            self.up.start = self.up.end;
        }
        self.update_gauge();
    }

    fn scan_server(&mut self, r: std::ops::Range<usize>) {
        count(&self.stats.bytes_backend_to_client, r.len());
        let Pipe { buf, framer, .. } = &mut self.down;
        let tracker = &mut self.tracker;
        let (mut ok, mut failed) = (false, false);
        framer.feed(&buf[r], |p| match tracker.on_server_packet(&p) {
            ServerEvent::AuthOk => ok = true,
            ServerEvent::AuthFailed => failed = true,
            _ => {}
        });
        if ok && !self.logged_in {
            self.logged_in = true;
            tracing::debug!(status = self.tracker.status(), "logged in");
        }
        if failed && !self.logged_in {
            self.auth_failed = true;
        }
        self.update_gauge();
    }

    fn update_gauge(&mut self) {
        if !self.logged_in {
            return;
        }
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
