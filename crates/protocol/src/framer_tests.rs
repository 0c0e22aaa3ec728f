//! Unit tests of the framer (byte literals, every split of the stream).

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
            Frame::Head(h) => out.push((true, h.len, 0, h.prefix.to_vec(), h.continuation, None)),
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

/// Rows start after a packet beginning 0x01 (a column count) and end at an
/// EOF (0xFE, shorter than 9 bytes); records the seq of each packet shown.
#[derive(Default)]
struct RowsSink {
    rows: bool,
    shown: Vec<u8>,
}

impl FrameSink for RowsSink {
    fn frame(&mut self, f: Frame<'_>) {
        if let Frame::Packet(p) = f {
            self.shown.push(p.seq);
            match p.first() {
                Some(0x01) => self.rows = true,
                Some(0xfe) if p.len < 9 => self.rows = false,
                _ => {}
            }
        }
    }
    fn in_rows(&self) -> bool {
        self.rows
    }
}

/// A result set: which packets a row-skipping sink must be shown.
fn result_set() -> (Vec<u8>, Vec<u8>) {
    let mut data = packet(0, &[0x01]);
    for seq in 1..=5 {
        data.extend(packet(seq, b"\x03abc")); // text rows
    }
    data.extend(packet(6, &[0x00, 0, 1])); // a binary row
    data.extend(packet(7, &[0xfb])); // NULL first column: a row
    data.extend(packet(8, &[0xfe; 12])); // a huge first column: shown
    data.extend(packet(9, b"\x03def"));
    data.extend(packet(10, &[0x17, 1])); // a captured first byte: shown
    data.extend(packet(11, &[])); // empty: shown
    data.extend(packet(12, b"\x03ghi"));
    data.extend(packet(13, &[0xff, 0x15, 0x04])); // ERR: shown
    data.extend(packet(14, &[0xfe, 0, 0, 2, 0])); // EOF: shown, rows end
    data.extend(packet(15, b"\x03jkl")); // not in rows: shown
    (data, vec![0, 8, 10, 11, 13, 14, 15])
}

#[test]
fn whole_rows_pass_unreported_until_a_packet_that_is_not_a_plain_row() {
    let (data, must_show) = result_set();
    let mut f = Framer::new();
    f.capture(&[0x17], 64);
    let mut sink = RowsSink::default();
    assert_eq!(f.feed_frames::<true>(&data, &mut sink), 16);
    assert_eq!(sink.shown, must_show);
    assert!(f.at_logical_boundary());
}

#[test]
fn rows_split_across_reads_are_counted_and_nothing_else_is_missed() {
    let (data, must_show) = result_set();
    for chunk in 1..=data.len() {
        let mut f = Framer::new();
        f.capture(&[0x17], 64);
        let mut sink = RowsSink::default();
        let n: usize = data
            .chunks(chunk)
            .map(|c| f.feed_frames::<false>(c, &mut sink))
            .sum();
        assert_eq!(n, 16, "chunk {chunk}");
        // a row cut by a read is shown (it is framed byte-wise), in order
        assert!(sink.shown.windows(2).all(|w| w[0] < w[1]), "chunk {chunk}");
        let missed: Vec<_> = must_show
            .iter()
            .filter(|s| !sink.shown.contains(s))
            .collect();
        assert!(missed.is_empty(), "chunk {chunk}: missed {missed:?}");
        assert!(f.at_logical_boundary());
    }
}

#[test]
fn a_max_size_row_and_its_continuation_are_shown() {
    let mut data = packet(0, &[0x01]);
    let mut big = vec![0xff, 0xff, 0xff, 1, 0x03];
    big.resize(4 + MAX_PAYLOAD, b'x');
    data.extend(big);
    data.extend(packet(2, b"\x03x")); // continuation of the row above
    data.extend(packet(3, b"\x03y"));
    let mut sink = RowsSink::default();
    assert_eq!(Framer::new().feed_frames::<false>(&data, &mut sink), 4);
    assert_eq!(sink.shown, [0, 1, 2]);
}

#[test]
fn packet_end_finds_the_end_of_the_packet_under_way_at_every_split() {
    let mut data = packet(0, b"\x03SELECT 1");
    let first = data.len();
    data.extend(packet(0, b"\x0e"));
    for split in 0..=data.len() {
        let mut f = Framer::new();
        f.feed(&data[..split.min(first)], |_| {});
        let at = split.min(first);
        let end = f.packet_end(&data[at..]);
        let want = if at == first { 5 } else { first - at };
        assert_eq!(end, want, "fed {at} bytes");
        // a stream that stops early: everything there is belongs to the packet
        let short = &data[at..(at + end).saturating_sub(1).max(at)];
        assert_eq!(f.packet_end(short), short.len());
    }
}

#[test]
fn partial_packet_reports_what_was_fed_of_the_packet_under_way() {
    let mut f = Framer::new();
    assert_eq!(f.partial_packet(), None);
    f.feed(&[7, 0], |_| {});
    assert_eq!(f.partial_packet(), Some((2, 0, None)));
    f.feed(&[0, 1], |_| {});
    assert_eq!(f.partial_packet(), Some((4, 7, None)));
    f.feed(&[0x00, 1, 2], |_| {});
    assert_eq!(f.partial_packet(), Some((7, 7, Some(0x00))));
    let mut done = 0;
    f.feed(&[3, 4, 5, 6], |_| done += 1);
    assert_eq!((done, f.partial_packet()), (1, None));
}
