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

impl PacketInfo<'_> {
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

    /// Feed bytes; `on_packet` runs once per packet completed inside `data`.
    /// Returns the number of packets completed.
    pub fn feed(&mut self, data: &[u8], mut on_packet: impl FnMut(PacketInfo<'_>)) -> usize {
        self.feed_inner::<false>(data, |f| {
            if let Frame::Packet(p) = f {
                on_packet(p)
            }
        })
    }

    /// Like [`Framer::feed`], and also reports each packet's head as soon as
    /// it is complete ([`Frame::Head`], before that packet's [`Frame::Packet`]).
    pub fn feed_with_heads(&mut self, data: &[u8], on_frame: impl FnMut(Frame<'_>)) -> usize {
        self.feed_inner::<true>(data, on_frame)
    }

    fn feed_inner<const HEADS: bool>(
        &mut self,
        mut data: &[u8],
        mut on_frame: impl FnMut(Frame<'_>),
    ) -> usize {
        let total = data.len();
        let mut done = 0;
        while !data.is_empty() {
            if self.header_have == 0 {
                if let Some(rest) = self.whole_packet::<HEADS>(data, total, &mut on_frame) {
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
                on_frame(Frame::Head(Head {
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
                self.finish(&mut on_frame);
                done += 1;
            }
        }
        done
    }

    /// The common case, a packet lying whole in `data`: reported straight
    /// from `data`, with no copy into the framer's state. `None` when the
    /// packet is not all there (the byte-wise path below takes it).
    fn whole_packet<'d, const HEADS: bool>(
        &mut self,
        data: &'d [u8],
        total: usize,
        on_frame: &mut impl FnMut(Frame<'_>),
    ) -> Option<&'d [u8]> {
        let header = data.get(..4)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
        let payload = data.get(4..4 + len)?;
        let prefix = &payload[..len.min(PREFIX_LEN)];
        let continuation = self.prev_was_max;
        if HEADS {
            on_frame(Frame::Head(Head {
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
        on_frame(Frame::Packet(PacketInfo {
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
        self.len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
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

    fn finish(&mut self, on_frame: &mut impl FnMut(Frame<'_>)) {
        let payload =
            (self.capturing && self.captured.len() == self.len).then_some(&self.captured[..]);
        let info = PacketInfo {
            len: self.len,
            seq: self.header[3],
            prefix: &self.prefix[..self.prefix_have as usize],
            continuation: self.continuation,
            payload,
        };
        on_frame(Frame::Packet(info));
        self.prev_was_max = self.len == MAX_PAYLOAD;
        self.header_have = 0;
        self.capturing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let n = payload.len() as u32;
        let mut v = n.to_le_bytes()[..3].to_vec();
        v.push(seq);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn captures_whole_payloads_of_chosen_commands_only() {
        let mut data = packet(0, b"\x03SET @a = 1");
        data.extend(packet(0, b"\x17\x01\x00\x00\x00"));
        data.extend(packet(0, &[&[0x16u8][..], &[b'x'; 100]].concat()));
        let mut f = Framer::new();
        f.capture(&[0x03, 0x16], 64);
        let mut got = Vec::new();
        for b in &data {
            f.feed(std::slice::from_ref(b), |p| {
                got.push(p.payload.map(|x| x.to_vec()))
            });
        }
        assert_eq!(got, vec![Some(b"\x03SET @a = 1".to_vec()), None, None]);
    }

    fn collect(f: &mut Framer, data: &[u8]) -> Vec<(usize, u8, Vec<u8>, bool)> {
        let mut out = Vec::new();
        f.feed(data, |p| {
            out.push((p.len, p.seq, p.prefix.to_vec(), p.continuation))
        });
        out
    }

    #[test]
    fn whole_packets_in_one_chunk() {
        let mut data = packet(0, &[0x03, b'S', b'E', b'L']);
        data.extend(packet(1, &[]));
        let mut f = Framer::new();
        let got = collect(&mut f, &data);
        assert_eq!(
            got,
            vec![
                (4, 0, vec![0x03, b'S', b'E', b'L'], false),
                (0, 1, vec![], false)
            ]
        );
        assert!(f.at_boundary());
    }

    #[test]
    fn byte_at_a_time_gives_the_same_packets() {
        let mut data = packet(3, &[0xfe, 0, 0, 2, 0]);
        data.extend(packet(4, &[7u8; 100]));
        data.extend(packet(5, &[]));
        let mut whole = Framer::new();
        let expected = collect(&mut whole, &data);
        let mut f = Framer::new();
        let mut got = Vec::new();
        for b in &data {
            got.extend(collect(&mut f, std::slice::from_ref(b)));
        }
        assert_eq!(got, expected);
        assert_eq!(got[1].2.len(), PREFIX_LEN);
    }

    #[test]
    fn max_size_packet_is_followed_by_a_continuation() {
        // header of a 0xFFFFFF packet, its payload, then an empty terminator
        let mut data = vec![0xff, 0xff, 0xff, 0x00, 0x03];
        data.resize(4 + MAX_PAYLOAD, b'x');
        data.extend(packet(1, &[]));
        data.extend(packet(0, &[0x0e]));
        let mut f = Framer::new();
        let got = collect(&mut f, &data);
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].0, got[0].3), (MAX_PAYLOAD, false));
        assert_eq!((got[1].0, got[1].3), (0, true));
        assert_eq!((got[2].2.clone(), got[2].3), (vec![0x0e], false));
    }

    #[test]
    fn heads_point_at_their_bytes_however_the_stream_is_split() {
        let mut data = packet(0, &[0x17, 9, 0, 0, 0, 0, 1, 0, 0, 0]);
        data.extend(packet(1, &[]));
        data.extend(packet(2, &[b'y'; 70]));
        for chunk in 1..data.len() {
            let mut f = Framer::new();
            let (mut heads, mut packets, mut at) = (Vec::new(), 0, 0);
            for piece in data.chunks(chunk) {
                f.feed_with_heads(piece, |fr| match fr {
                    Frame::Head(h) => {
                        let start = at + h.end - h.prefix.len() - 4;
                        let head = &data[start..start + 4 + h.prefix.len()];
                        assert_eq!(&head[4..], h.prefix, "chunk {chunk}");
                        assert_eq!(head[..3], (h.len as u32).to_le_bytes()[..3]);
                        heads.push(h.len);
                    }
                    Frame::Packet(_) => packets += 1,
                });
                at += piece.len();
            }
            assert_eq!(heads, vec![10, 0, 70], "chunk {chunk}");
            assert_eq!(packets, 3);
            assert_eq!(f.partial_head(), 0);
        }
        // bytes of an unfinished head left at the end of what was fed:
        // part of a header, a header and part of its prefix, none once the
        // head is whole (first packet: 14 bytes; third: 4 + 70, prefix 32)
        for (fed, left) in [(3, 3), (8, 8), (14, 0), (16, 2), (18, 0), (30, 12), (54, 0)] {
            let mut f = Framer::new();
            f.feed(&data[..fed], |_| {});
            assert_eq!(f.partial_head(), left, "after {fed} bytes");
        }
    }

    /// Every frame as owned data: (is head, len, seq, prefix, continuation, payload).
    type Seen = (bool, usize, u8, Vec<u8>, bool, Option<Vec<u8>>);

    fn frames(f: &mut Framer, pieces: &[&[u8]]) -> Vec<Seen> {
        let mut out = Vec::new();
        for piece in pieces {
            f.feed_with_heads(piece, |fr| match fr {
                Frame::Head(h) => {
                    out.push((true, h.len, 0, h.prefix.to_vec(), h.continuation, None))
                }
                Frame::Packet(p) => out.push((
                    false,
                    p.len,
                    p.seq,
                    p.prefix.to_vec(),
                    p.continuation,
                    p.payload.map(<[u8]>::to_vec),
                )),
            });
        }
        out
    }

    #[test]
    fn whole_packets_and_split_packets_give_the_same_frames() {
        let mut data = packet(0, b"\x03SELECT 1");
        data.extend(packet(1, &[]));
        data.extend(packet(2, &[0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0]));
        data.extend(packet(3, &[b'r'; 200])); // captured? no: too long
        data.extend(packet(4, &[0xfe, 0, 0, 2, 0]));
        let expected = {
            // the byte-wise path only: one byte at a time
            let mut f = Framer::new();
            f.capture(&[0x03, 0x17], 64);
            let bytes: Vec<&[u8]> = data.chunks(1).collect();
            frames(&mut f, &bytes)
        };
        assert_eq!(expected.len(), 10);
        assert_eq!(expected[1].5.as_deref(), Some(&b"\x03SELECT 1"[..]));
        for chunk in 2..=data.len() {
            let mut f = Framer::new();
            f.capture(&[0x03, 0x17], 64);
            let pieces: Vec<&[u8]> = data.chunks(chunk).collect();
            assert_eq!(frames(&mut f, &pieces), expected, "chunk {chunk}");
            assert!(f.at_logical_boundary());
        }
    }

    #[test]
    fn a_whole_max_size_packet_still_marks_its_continuation() {
        let mut data = vec![0xff, 0xff, 0xff, 0x00, 0x03];
        data.resize(4 + MAX_PAYLOAD, b'x');
        data.extend(packet(1, &[0x03]));
        let mut f = Framer::new();
        f.capture(&[0x03], 64);
        let got = frames(&mut f, &[&data]);
        // the continuation starts with 0x03 but is not a command: not captured
        assert_eq!(got[3], (false, 1, 1, vec![0x03], true, None));
        assert_eq!(got[1].5, None);
    }

    #[test]
    fn partial_header_waits() {
        let mut f = Framer::new();
        assert_eq!(f.feed(&[5, 0], |_| panic!("no packet yet")), 0);
        assert!(!f.at_boundary());
        assert_eq!(f.feed(&[0, 9, 1, 2, 3, 4], |_| {}), 0);
        let mut seen = None;
        assert_eq!(f.feed(&[5], |p| seen = Some((p.seq, p.prefix.to_vec()))), 1);
        assert_eq!(seen, Some((9, vec![1, 2, 3, 4, 5])));
    }
}
