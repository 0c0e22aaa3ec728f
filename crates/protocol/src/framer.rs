//! Incremental packet framer: finds MySQL packet boundaries in a byte stream
//! without copying payloads, keeping the first bytes of each packet (enough to
//! read a command byte or an OK/ERR/EOF header and its status flags).

/// How many payload bytes of each packet are kept for inspection: the longest
/// header we read is an OK packet (1 + 9 + 9 + 2 + 2 bytes).
pub const PREFIX_LEN: usize = 32;

/// Largest payload of one physical packet; a payload of exactly this size is
/// continued by the next packet.
pub const MAX_PAYLOAD: usize = 0xFF_FFFF;

/// One complete physical packet seen by the framer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo<'a> {
    /// Payload length of this physical packet.
    pub len: usize,
    pub seq: u8,
    /// The first `min(len, PREFIX_LEN)` payload bytes.
    pub prefix: &'a [u8],
    /// True when this packet continues a logical payload started by a
    /// previous packet of exactly [`MAX_PAYLOAD`] bytes.
    pub continuation: bool,
    /// The whole payload, when capture was asked for this packet's first
    /// byte and it fit the capture limit (see [`Framer::capture`]).
    pub payload: Option<&'a [u8]>,
}

impl<'a> PacketInfo<'a> {
    /// A whole packet of sequence 0 carrying `payload`, captured, as the
    /// framer reports one (for code and tests that start from a payload).
    pub fn of_payload(payload: &'a [u8]) -> PacketInfo<'a> {
        PacketInfo {
            len: payload.len(),
            seq: 0,
            prefix: &payload[..payload.len().min(PREFIX_LEN)],
            continuation: false,
            payload: Some(payload),
        }
    }

    /// First payload byte (the command, or the response header), if any.
    pub fn first(&self) -> Option<u8> {
        self.prefix.first().copied()
    }
}

/// The head of a packet: its header and first `min(len, PREFIX_LEN)`
/// payload bytes, reported as soon as they have all been fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head<'a> {
    /// Offset, in the slice being fed, just past the head's last byte; the
    /// head starts `4 + prefix.len()` bytes earlier (possibly in an earlier feed).
    pub end: usize,
    pub len: usize,
    pub prefix: &'a [u8],
    pub continuation: bool,
}

/// What [`Framer::feed_with_heads`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Head(Head<'a>),
    Packet(PacketInfo<'a>),
}

/// Where the framer reports what it finds. Any `FnMut(Frame)` closure is
/// one; a result-set reader also says when rows are streaming, and whole
/// row packets are then passed over without being reported one by one.
pub trait FrameSink {
    fn frame(&mut self, f: Frame<'_>);
    /// The packets that follow are result-set rows: reporting one changes
    /// nothing for this sink until a packet that [`plain_row`] rejects.
    fn in_rows(&self) -> bool {
        false
    }
}

impl<F: FnMut(Frame<'_>)> FrameSink for F {
    fn frame(&mut self, f: Frame<'_>) {
        self(f)
    }
}

/// A row packet's first byte: anything below an EOF/OK (0xFE) or ERR (0xFF)
/// header. Text rows start with a length-encoded string (0xFB: NULL), binary
/// rows with 0x00. A 0xFE row exists (a huge first column) and takes the
/// reported path, where the tracker tells it from an EOF by its length.
pub(crate) fn plain_row(first: u8) -> bool {
    first < 0xfe
}

/// The payload length in a packet header's first three bytes (little endian).
pub fn payload_len(header: &[u8]) -> usize {
    u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize
}

#[derive(Debug, Clone, Default)]
pub struct Framer {
    header: [u8; 4],
    header_have: u8,
    /// Payload bytes of the current packet still to come (valid once the header is complete).
    remaining: usize,
    len: usize,
    prefix: [u8; PREFIX_LEN],
    prefix_have: u8,
    /// The previous packet had a payload of exactly MAX_PAYLOAD bytes.
    prev_was_max: bool,
    /// Current packet is a continuation.
    continuation: bool,
    /// First bytes whose packets are captured whole: a 256-bit set.
    capture_set: [u64; 4],
    capture_limit: usize,
    /// Payload of the current packet while it is being captured.
    captured: Vec<u8>,
    capturing: bool,
    capture_decided: bool,
}

impl Framer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Capture whole payloads (up to `limit` bytes) of packets whose first
    /// byte is in `first_bytes`; larger ones are reported without payload.
    pub fn capture(&mut self, first_bytes: &[u8], limit: usize) {
        self.capture_set = [0; 4];
        for &b in first_bytes {
            self.capture_set[(b >> 6) as usize] |= 1 << (b & 63);
        }
        self.capture_limit = limit;
    }

    fn wants(&self, first: u8) -> bool {
        self.capture_set[(first >> 6) as usize] & (1 << (first & 63)) != 0
    }

    /// True when the framer is between packets (no partial header or payload).
    pub fn at_boundary(&self) -> bool {
        self.header_have == 0
    }

    /// True between logical packets: at a boundary and not inside a
    /// multi-packet payload.
    pub fn at_logical_boundary(&self) -> bool {
        self.at_boundary() && !self.prev_was_max
    }

    /// Bytes at the end of what was fed that belong to a packet whose head
    /// (header plus its first `min(len, PREFIX_LEN)` payload bytes) is not
    /// complete yet. A relay that may rewrite heads keeps these unsent.
    pub fn partial_head(&self) -> usize {
        let have = self.header_have as usize;
        if have < 4 {
            have
        } else if (self.prefix_have as usize) < self.len.min(PREFIX_LEN) {
            4 + self.prefix_have as usize
        } else {
            0
        }
    }

    /// The packet under way, if one is: the bytes of it fed so far, its
    /// payload length and first payload byte (once known).
    pub fn partial_packet(&self) -> Option<(usize, usize, Option<u8>)> {
        match self.header_have as usize {
            0 => None,
            n @ 1..=3 => Some((n, 0, None)),
            _ => {
                let first = (self.prefix_have > 0).then_some(self.prefix[0]);
                Some((4 + self.len - self.remaining, self.len, first))
            }
        }
    }

    /// How many bytes of `data` (the stream's continuation after what was
    /// fed) belong to the packet under way or starting there: all of
    /// `data` when that packet does not end inside it.
    pub fn packet_end(&self, data: &[u8]) -> usize {
        let have = self.header_have as usize;
        if have == 4 {
            return self.remaining.min(data.len());
        }
        let need = 4 - have;
        if data.len() < need {
            return data.len();
        }
        let mut header = self.header;
        header[have..].copy_from_slice(&data[..need]);
        (need + payload_len(&header)).min(data.len())
    }

    /// Feed bytes; `on_packet` runs once per packet completed inside `data`.
    /// Returns the number of packets completed.
    pub fn feed(&mut self, data: &[u8], mut on_packet: impl FnMut(PacketInfo<'_>)) -> usize {
        self.feed_frames::<false>(data, &mut |f: Frame<'_>| {
            if let Frame::Packet(p) = f {
                on_packet(p)
            }
        })
    }

    /// Like [`Framer::feed`], and also reports each packet's head as soon as
    /// it is complete ([`Frame::Head`], before that packet's [`Frame::Packet`]).
    pub fn feed_with_heads(&mut self, data: &[u8], mut on_frame: impl FnMut(Frame<'_>)) -> usize {
        self.feed_frames::<true>(data, &mut on_frame)
    }

    /// Feed `data` to `sink`, with heads when `HEADS`. While the sink is
    /// [`in_rows`](FrameSink::in_rows), whole row packets are counted but
    /// not reported (nor their heads). Returns the packets completed.
    pub fn feed_frames<const HEADS: bool>(
        &mut self,
        mut data: &[u8],
        sink: &mut impl FrameSink,
    ) -> usize {
        let total = data.len();
        let mut done = 0;
        while !data.is_empty() {
            if self.header_have == 0 {
                if !self.prev_was_max && sink.in_rows() {
                    let (bytes, rows) = self.whole_rows(data);
                    data = &data[bytes..];
                    done += rows;
                    if data.is_empty() {
                        break;
                    }
                }
                if let Some(rest) = self.whole_packet::<HEADS>(data, total, sink) {
                    data = rest;
                    done += 1;
                    continue;
                }
            }
            if self.header_have < 4 {
                let take = (4 - self.header_have as usize).min(data.len());
                let at = self.header_have as usize;
                self.header[at..at + take].copy_from_slice(&data[..take]);
                self.header_have += take as u8;
                data = &data[take..];
                if self.header_have < 4 {
                    break;
                }
                self.start_payload();
            }
            let want = self.len.min(PREFIX_LEN) - self.prefix_have as usize;
            let fresh_head = HEADS && (want > 0 || self.len == 0) && want <= data.len();
            if want > 0 {
                let take = want.min(data.len());
                let at = self.prefix_have as usize;
                self.prefix[at..at + take].copy_from_slice(&data[..take]);
                self.prefix_have += take as u8;
            }
            if fresh_head {
                sink.frame(Frame::Head(Head {
                    end: total - data.len() + want,
                    len: self.len,
                    prefix: &self.prefix[..self.prefix_have as usize],
                    continuation: self.continuation,
                }));
            }
            let take = self.remaining.min(data.len());
            if self.capturing || self.start_capture() {
                if self.captured.len() + take <= self.capture_limit {
                    self.captured.extend_from_slice(&data[..take]);
                } else {
                    self.capturing = false;
                    self.captured.clear();
                }
            }
            self.remaining -= take;
            data = &data[take..];
            if self.remaining == 0 {
                self.finish(sink);
                done += 1;
            }
        }
        done
    }

    /// The whole row packets at the front of `data`: (bytes, packets). Stops
    /// at a packet that is not all there, not a [`plain_row`], empty, of
    /// [`MAX_PAYLOAD`] bytes (a continuation follows), or to be captured.
    fn whole_rows(&self, data: &[u8]) -> (usize, usize) {
        let (mut at, mut rows) = (0, 0);
        while let Some(h) = data.get(at..at + 5) {
            let len = payload_len(h);
            let whole = data.len() - at - 4 >= len;
            if !whole || len == 0 || len == MAX_PAYLOAD || !plain_row(h[4]) || self.wants(h[4]) {
                break;
            }
            at += 4 + len;
            rows += 1;
        }
        (at, rows)
    }

    /// The common case, a packet lying whole in `data`: reported straight
    /// from `data`, with no copy into the framer's state. `None` when the
    /// packet is not all there (the byte-wise path below takes it).
    fn whole_packet<'d, const HEADS: bool>(
        &mut self,
        data: &'d [u8],
        total: usize,
        sink: &mut impl FrameSink,
    ) -> Option<&'d [u8]> {
        let header = data.get(..4)?;
        let len = payload_len(header);
        let payload = data.get(4..4 + len)?;
        let prefix = &payload[..len.min(PREFIX_LEN)];
        let continuation = self.prev_was_max;
        if HEADS {
            sink.frame(Frame::Head(Head {
                end: total - data.len() + 4 + prefix.len(),
                len,
                prefix,
                continuation,
            }));
        }
        let captured = !continuation
            && len <= self.capture_limit
            && len < MAX_PAYLOAD
            && prefix.first().is_some_and(|&b| self.wants(b));
        sink.frame(Frame::Packet(PacketInfo {
            len,
            seq: header[3],
            prefix,
            continuation,
            payload: captured.then_some(payload),
        }));
        self.prev_was_max = len == MAX_PAYLOAD;
        Some(&data[4 + len..])
    }

    fn start_payload(&mut self) {
        let h = self.header;
        self.len = payload_len(&h);
        self.remaining = self.len;
        self.prefix_have = 0;
        self.continuation = self.prev_was_max;
        self.capturing = false;
        self.captured.clear();
        self.capture_decided = false;
    }

    /// At the first payload byte of a packet: does it get captured?
    fn start_capture(&mut self) -> bool {
        if self.capture_decided || self.prefix_have == 0 {
            return false;
        }
        self.capture_decided = true;
        self.capturing = !self.continuation
            && self.len <= self.capture_limit
            && self.len < MAX_PAYLOAD
            && self.wants(self.prefix[0]);
        self.capturing
    }

    fn finish(&mut self, sink: &mut impl FrameSink) {
        let payload =
            (self.capturing && self.captured.len() == self.len).then_some(&self.captured[..]);
        let info = PacketInfo {
            len: self.len,
            seq: self.header[3],
            prefix: &self.prefix[..self.prefix_have as usize],
            continuation: self.continuation,
            payload,
        };
        sink.frame(Frame::Packet(info));
        self.prev_was_max = self.len == MAX_PAYLOAD;
        self.header_have = 0;
        self.capturing = false;
    }
}

#[cfg(test)]
#[path = "framer_tests.rs"]
mod tests;
