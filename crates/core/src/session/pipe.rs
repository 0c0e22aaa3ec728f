//! One direction of the relay: a bounded buffer taken from the proxy's
//! [`BufferPool`] only while bytes are in flight (an idle session holds no
//! relay buffers), the framer that sees every packet in it, and the
//! hold-back of an incomplete packet head while statement ids are rewritten
//! in place.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::session::buffers::BufferPool;
use crate::session::stream::Stream;
use mysql_zk_proxy_protocol::Framer;

/// What [`Pipe::fill`] got.
pub(super) enum Filled {
    /// Bytes (an empty range: EOF) arrived at this range of the buffer.
    Bytes(std::ops::Range<usize>),
    /// Nothing to read: the task is woken when there is.
    Waiting,
    /// No room, or the source is at EOF: nothing to read until a flush.
    Full,
}

/// One direction's buffer: bytes in `buf[start..end]` (`end == buf.len()`)
/// are read but not yet written; of them, `buf[start..scanned]` were shown
/// to the framer and may be written. Its memory is taken from the pool when the
/// source has data and given back once all is written.
pub(super) struct Pipe<'a> {
    pub(super) buf: Vec<u8>,
    pub(super) start: usize,
    pub(super) end: usize,
    /// End of the bytes the framer has seen (the relay scans client
    /// commands one at a time; what lies past this waits its turn).
    pub(super) scanned: usize,
    /// Bytes read from the source at most before they are written.
    size: usize,
    pub(super) eof: bool,
    pub(super) framer: Framer,
    /// Keep a packet's incomplete head unsent (its statement id may be
    /// rewritten in place once it is whole).
    pub(super) hold_heads: bool,
    /// With `hold_heads`: bytes at the end of the scanned ones kept unsent
    /// besides the head (an OK packet under way, `session::oks`).
    pub(super) held_tail: usize,
    /// Bytes moved out of the buffer's front so far: a buffer offset plus
    /// this is a position in the stream that stays valid across moves.
    pub(super) shifted: usize,
    pool: &'a BufferPool,
}

impl<'a> Pipe<'a> {
    pub(super) fn new(size: usize, pool: &'a BufferPool) -> Self {
        Pipe {
            buf: Vec::new(),
            start: 0,
            end: 0,
            scanned: 0,
            size,
            eof: false,
            framer: Framer::new(),
            hold_heads: false,
            held_tail: 0,
            shifted: 0,
            pool,
        }
    }
    pub(super) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Give the (empty) buffer back to the pool.
    fn release(&mut self) {
        self.shifted += self.end;
        self.start = 0;
        self.end = 0;
        self.scanned = 0;
        self.pool.give(std::mem::take(&mut self.buf));
    }

    /// A flush may have something to do: bytes are buffered, or a TLS (or
    /// boxed) destination may hold bytes the socket did not take.
    pub(super) fn has_output(&self, dst: &Stream) -> bool {
        !self.is_empty() || dst.buffers_writes()
    }

    /// End of what may be written now.
    pub(super) fn sendable(&self) -> usize {
        if self.hold_heads && !self.eof {
            self.scanned - self.framer.partial_head().max(self.held_tail)
        } else {
            self.scanned
        }
    }

    /// Append bytes read elsewhere, all of them (a rewritten command can be
    /// longer than the buffer); returns their range.
    pub(super) fn push(&mut self, bytes: &[u8]) -> std::ops::Range<usize> {
        if self.buf.capacity() == 0 && !bytes.is_empty() {
            self.buf = self.pool.take(self.size);
        }
        self.buf.reserve_exact(bytes.len());
        self.buf.extend_from_slice(bytes);
        self.end += bytes.len();
        self.end - bytes.len()..self.end
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
        // TLS keeps records the socket did not take; push them (TCP keeps none)
        if dst.buffers_writes() {
            if let Poll::Ready(Err(e)) = Pin::new(&mut *dst).poll_flush(cx) {
                return Err(e);
            }
        }
        if self.is_empty() {
            self.release();
        }
        Ok(wrote)
    }

    /// Read into the free space. [`Filled::Waiting`] registers the wake-up,
    /// so the caller need not ask again until it is polled again.
    pub(super) fn fill(&mut self, cx: &mut Context<'_>, src: &mut Stream) -> io::Result<Filled> {
        if self.end >= self.size && self.start > 0 {
            // a held head or a command waiting its turn sits at the very
            // end: move it to the front
            self.buf.copy_within(self.start..self.end, 0);
            self.shifted += self.start;
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
            self.buf.truncate(self.end);
        }
        if self.eof || self.end >= self.size {
            return Ok(Filled::Full);
        }
        if self.buf.capacity() == 0 {
            match src.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => self.buf = self.pool.take(self.size),
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(Filled::Waiting),
            }
        }
        let room = (self.size - self.end).min(self.buf.capacity() - self.end);
        let mut rb = ReadBuf::uninit(&mut self.buf.spare_capacity_mut()[..room]);
        match Pin::new(&mut *src).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                // SAFETY: poll_read initialised the first n spare bytes (ReadBuf's contract).
                unsafe { self.buf.set_len(self.end + n) };
                let range = self.end..self.end + n;
                self.end += n;
                self.eof = n == 0;
                Ok(Filled::Bytes(range))
            }
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => {
                if self.is_empty() {
                    // readiness was stale: an idle pipe holds no memory
                    self.release();
                }
                Ok(Filled::Waiting)
            }
        }
    }
}

impl Drop for Pipe<'_> {
    /// A relay that ends (or stops for a migration) with bytes still
    /// buffered gives its buffer back too.
    fn drop(&mut self) {
        if self.buf.capacity() > 0 {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        (a, l.accept().await.unwrap().0)
    }

    /// Fill until bytes arrive (the source was just written to).
    async fn fill_bytes(pipe: &mut Pipe<'_>, src: &mut Stream) -> std::ops::Range<usize> {
        poll_fn(|cx| match pipe.fill(cx, src) {
            Ok(Filled::Bytes(r)) => Poll::Ready(r),
            Ok(Filled::Waiting) => Poll::Pending,
            Ok(Filled::Full) => panic!("an empty pipe is never full"),
            Err(e) => panic!("read failed: {e}"),
        })
        .await
    }

    #[tokio::test]
    async fn the_buffer_goes_back_to_the_pool_once_written_and_is_reused() {
        let pool = BufferPool::new(&[64], 4);
        let (mut writer, src) = pair().await;
        let (dst, mut reader) = pair().await;
        let (mut src, mut dst) = (Stream::Plain(src), Stream::Plain(dst));
        let mut pipe = Pipe::new(64, &pool);
        assert_eq!(pipe.buf.capacity(), 0, "a new pipe holds no buffer");

        writer.write_all(b"first").await.unwrap();
        let r = fill_bytes(&mut pipe, &mut src).await;
        pipe.scanned = r.end;
        assert_eq!(&pipe.buf[r], b"first");
        let held = pipe.buf.as_ptr();
        poll_fn(|cx| Poll::Ready(pipe.flush(cx, &mut dst)))
            .await
            .unwrap();
        assert_eq!(pipe.buf.capacity(), 0, "an idle pipe holds no buffer");
        assert_eq!(pool.spare(64), 1, "the written buffer is spare again");
        let mut got = [0u8; 5];
        reader.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"first");

        writer.write_all(b"second").await.unwrap();
        let r = fill_bytes(&mut pipe, &mut src).await;
        pipe.scanned = r.end;
        assert_eq!(&pipe.buf[r], b"second");
        assert_eq!(pipe.buf.as_ptr(), held, "the spare buffer was taken again");
        assert_eq!(pool.spare(64), 0);
        drop(pipe);
        assert_eq!(pool.spare(64), 1, "a dropped pipe gives its buffer back");
    }
}
