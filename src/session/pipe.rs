//! One direction of the relay: a bounded buffer whose memory is taken only
//! while bytes are in flight, with the framer that sees every packet in it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::protocol::Framer;

/// One direction's buffer: bytes in `buf[start..end]` (`end == buf.len()`)
/// are read but not yet written. Its memory is taken when the source has data
/// and freed once all is written: an idle session holds no relay buffers.
pub(super) struct Pipe {
    pub(super) buf: Vec<u8>,
    pub(super) start: usize,
    pub(super) end: usize,
    size: usize,
    pub(super) eof: bool,
    pub(super) framer: Framer,
}

impl Pipe {
    pub(super) fn new(size: usize) -> Self {
        Pipe {
            buf: Vec::new(),
            start: 0,
            end: 0,
            size,
            eof: false,
            framer: Framer::new(),
        }
    }
    pub(super) fn is_empty(&self) -> bool {
        self.start == self.end
    }
    /// Append bytes read elsewhere (as much as fits); returns their range.
    pub(super) fn push(&mut self, bytes: &[u8]) -> std::ops::Range<usize> {
        let n = bytes.len().min(self.size - self.end);
        self.buf.reserve_exact(self.size - self.end);
        self.buf.extend_from_slice(&bytes[..n]);
        self.end += n;
        self.end - n..self.end
    }

    /// Write what is buffered. Ok(true) if anything was written.
    pub(super) fn flush(&mut self, cx: &mut Context<'_>, dst: &mut TcpStream) -> io::Result<bool> {
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
            self.buf = Vec::new();
        }
        Ok(wrote)
    }

    /// Read into the free space. Ok(Some(range)) when bytes (or EOF: empty
    /// range) arrived, Ok(None) when nothing is ready or there is no room.
    pub(super) fn fill(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut TcpStream,
    ) -> io::Result<Option<std::ops::Range<usize>>> {
        if self.eof || self.end == self.size {
            return Ok(None);
        }
        if self.buf.capacity() == 0 {
            match src.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => self.buf.reserve_exact(self.size),
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(None),
            }
        }
        let room = self.size - self.end;
        let mut rb = ReadBuf::uninit(&mut self.buf.spare_capacity_mut()[..room]);
        match Pin::new(&mut *src).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                // SAFETY: poll_read initialised the first n spare bytes (ReadBuf's contract).
                unsafe { self.buf.set_len(self.end + n) };
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
