//! Fuzz target: the handshake parsers — a backend greeting (`adjust_greeting`)
//! and a client handshake response (`login::parse_response`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mysql_zk_proxy_core::session::login::parse_response;
use mysql_zk_proxy_protocol::handshake::{adjust_greeting, Greeting, CLEARED_CAPS};
use mysql_zk_proxy_protocol::packet_io::Packet;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        let mut payload = body.to_vec();
        if let Ok(g) = adjust_greeting(&mut payload) {
            assert_eq!(g.caps & CLEARED_CAPS, 0);
            assert_eq!(payload.len(), body.len(), "adjusted in place");
        }
    } else {
        let greeting = Greeting {
            server_version: "10.11.0-MariaDB".into(),
            connection_id: 7,
            caps: 0xffff_f7ff & !CLEARED_CAPS,
            mariadb_caps: 0x1d,
            auth_plugin: Some("mysql_native_password".into()),
            scramble: vec![0x2a; 20],
            backend_ssl: false,
        };
        let p = Packet {
            seq: 1,
            payload: body.to_vec(),
        };
        let _ = parse_response(&p, &greeting);
    }
});
