//! One direction of the relay: a bounded buffer of bytes read and not yet
//! written, the framer that sees them, and the hold-back of an incomplete
//! packet head while statement ids are rewritten in place.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::protocol::Framer;
use crate::session::stream::Stream;

/// One direction's buffer: bytes in `buf[start..end]` are read but not yet written.
pub(super) struct Pipe {
    pub(super) buf: Box<[u8]>,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) eof: bool,
    pub(super) framer: Framer,
    /// Keep a packet's incomplete head unsent (its statement id may be
    /// rewritten in place once it is whole).
    pub(super) hold_heads: bool,
}

impl Pipe {
    pub(super) fn new(size: usize) -> Self {
        Pipe {
            buf: vec![0u8; size].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            framer: Framer::new(),
            hold_heads: false,
        }
    }
    pub(super) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// End of what may be written now.
    pub(super) fn sendable(&self) -> usize {
        if self.hold_heads && !self.eof {
            self.end - self.framer.partial_head()
        } else {
            self.end
        }
    }

    /// Append bytes read elsewhere; returns their range. The buffer grows
    /// to take them all (a rewritten command can be longer than it was).
    pub(super) fn push(&mut self, bytes: &[u8]) -> std::ops::Range<usize> {
        if bytes.len() > self.buf.len() - self.end {
            let mut bigger = vec![0u8; self.end + bytes.len()].into_boxed_slice();
            bigger[..self.end].copy_from_slice(&self.buf[..self.end]);
            self.buf = bigger;
        }
        let n = bytes.len();
        self.buf[self.end..self.end + n].copy_from_slice(&bytes[..n]);
        self.end += n;
        self.end - n..self.end
    }

    /// Write what is buffered. Ok(true) if anything was written.
    pub(super) fn flush(&mut self, cx: &mut Context<'_>, dst: &mut Stream) -> io::Result<bool> {
        let mut wrote = false;
        while self.start < self.sendable() {
            let to = self.sendable();
            match Pin::new(&mut *dst).poll_write(cx, &self.buf[self.start..to]) {
                Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.start += n;
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => break,
            }
        }
        // TLS keeps records the socket did not take; push them (a no-op on TCP)
        if let Poll::Ready(Err(e)) = Pin::new(&mut *dst).poll_flush(cx) {
            return Err(e);
        }
        if self.is_empty() {
            self.start = 0;
            self.end = 0;
        }
        Ok(wrote)
    }

    /// Read into the free space. Ok(Some(range)) when bytes (or EOF: empty
    /// range) arrived, Ok(None) when nothing is ready or there is no room.
    pub(super) fn fill(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut Stream,
    ) -> io::Result<Option<std::ops::Range<usize>>> {
        if self.hold_heads && self.end == self.buf.len() && self.start > 0 {
            // a held head sits at the very end: move it to the front
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
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
