//! Reading whole packets from a stream, cancel-safe: bytes read stay in the
//! reader's buffer if a `select!` drops the read, and what was read past the
//! last packet can be handed on (to the relay) untouched.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// One logical-size-capped packet: (sequence id, payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub seq: u8,
    pub payload: Vec<u8>,
}

/// Buffers a stream and yields one packet at a time.
#[derive(Debug)]
pub struct PacketReader {
    buf: BytesMut,
    max_payload: usize,
}

impl PacketReader {
    /// `max_payload` bounds what one packet may announce (a login exchange
    /// needs a few KiB; a bigger announcement is an error, not an allocation).
    pub fn new(max_payload: usize) -> Self {
        PacketReader {
            buf: BytesMut::with_capacity(1024),
            max_payload,
        }
    }

    /// A reader that first yields packets from `already_read`.
    pub fn with_initial(max_payload: usize, already_read: &[u8]) -> Self {
        let mut r = PacketReader::new(max_payload);
        r.buf.extend_from_slice(already_read);
        r
    }

    /// The next packet. Cancel-safe.
    pub async fn read<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> io::Result<Packet> {
        loop {
            if let Some(p) = self.take()? {
                return Ok(p);
            }
            if r.read_buf(&mut self.buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    fn take(&mut self) -> io::Result<Option<Packet>> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], 0]) as usize;
        if len > self.max_payload {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "packet of {len} bytes during login (limit {})",
                    self.max_payload
                ),
            ));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let seq = self.buf[3];
        self.buf.advance(4);
        let payload = self.buf.split_to(len).to_vec();
        Ok(Some(Packet { seq, payload }))
    }

    /// Bytes read past the last packet returned.
    pub fn into_leftover(self) -> BytesMut {
        self.buf
    }
}

/// Frame `payload` as one packet with sequence id `seq`.
pub fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes()[..3]);
    out.push(seq);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn packets_split_anywhere_and_leftovers_kept() {
        let mut bytes = frame(0, b"hello");
        bytes.extend(frame(1, b""));
        bytes.extend_from_slice(&[9, 0, 0]); // start of a third packet
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for chunk in bytes.chunks(3) {
                b.write_all(chunk).await.unwrap();
            }
        });
        let mut r = PacketReader::new(1024);
        let p = r.read(&mut a).await.unwrap();
        assert_eq!((p.seq, p.payload.as_slice()), (0, &b"hello"[..]));
        let p = r.read(&mut a).await.unwrap();
        assert_eq!((p.seq, p.payload.len()), (1, 0));
        assert!(r.read(&mut a).await.is_err(), "eof mid-packet");
        assert_eq!(&r.into_leftover()[..], &[9, 0, 0]);
    }

    #[tokio::test]
    async fn oversized_announcement_is_an_error() {
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            b.write_all(&[0xff, 0xff, 0xff, 0]).await.unwrap();
        });
        let e = PacketReader::new(100).read(&mut a).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
