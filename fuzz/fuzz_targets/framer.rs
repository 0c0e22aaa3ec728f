//! Fuzz target: the incremental packet framer, fed the same bytes whole and
//! split at fuzzer-chosen points; both must see the same packets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mysql_zk_proxy_protocol::{Framer, PREFIX_LEN};

/// (len, seq, continuation, prefix, captured payload) of each packet.
type Seen = Vec<(usize, u8, bool, Vec<u8>, Option<Vec<u8>>)>;

fn run(chunks: &[&[u8]], capture: &[u8], limit: usize) -> (Seen, bool) {
    let mut f = Framer::new();
    f.capture(capture, limit);
    let mut seen = Seen::new();
    for c in chunks {
        f.feed(c, |p| {
            assert!(p.prefix.len() == p.len.min(PREFIX_LEN));
            if let Some(payload) = p.payload {
                assert_eq!(payload.len(), p.len);
                assert!(payload.len() <= limit);
                assert_eq!(&payload[..p.prefix.len()], p.prefix);
            }
            seen.push((
                p.len,
                p.seq,
                p.continuation,
                p.prefix.to_vec(),
                p.payload.map(|x| x.to_vec()),
            ));
        });
    }
    (seen, f.at_boundary())
}

fuzz_target!(|data: &[u8]| {
    // Byte 0: split stride; byte 1: a captured first byte; byte 2: capture limit.
    if data.len() < 3 {
        return;
    }
    let stride = (data[0] as usize % 17) + 1;
    let capture = [data[1]];
    let limit = data[2] as usize;
    let body = &data[3..];
    let whole = run(&[body], &capture, limit);
    let pieces: Vec<&[u8]> = body.chunks(stride).collect();
    let split = run(&pieces, &capture, limit);
    assert_eq!(whole, split);
});
