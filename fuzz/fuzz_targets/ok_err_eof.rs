//! Fuzz target: the OK/ERR/EOF readers — `ok_status`, `read_lenenc` and the
//! response tracker fed framed client and server packets in fuzzer order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mysql_zk_proxy_protocol::{ok_status, read_lenenc, Framer, Tracker};

fuzz_target!(|data: &[u8]| {
    let _ = ok_status(data);
    if let Some((_, used)) = read_lenenc(data) {
        assert!(used <= 9 && used <= data.len());
    }
    // Byte 0: capabilities choice; then records of (side, len, bytes).
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let caps = if mode & 1 == 1 {
        0x0100_0000 | 0x0200
    } else {
        0x0200
    };
    let mut tracker = Tracker::logged_in(caps, (mode >> 1) as u32 & 0x3f, 0x0002);
    let mut client = Framer::new();
    let mut server = Framer::new();
    while let Some((&head, tail)) = rest.split_first() {
        let n = ((head & 0x7f) as usize).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        rest = next;
        if head & 0x80 == 0 {
            client.feed(chunk, |p| {
                let _ = tracker.on_client_packet(&p);
            });
        } else {
            server.feed(chunk, |p| {
                let _ = tracker.on_server_packet(&p);
            });
        }
        let _ = (tracker.outstanding(), tracker.at_rest(), tracker.status());
    }
});
