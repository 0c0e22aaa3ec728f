//! Byte-literal tests of the PROXY protocol parser.

use super::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn v1_tcp4_and_tcp6() {
    let h = b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 6033\r\n";
    let want = Header::Proxied {
        source: sa("192.0.2.7:51000"),
        destination: sa("10.0.0.1:6033"),
    };
    assert_eq!(parse(h).unwrap(), Some((want, h.len())));
    let h = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 3306\r\n";
    let (got, len) = parse(h).unwrap().unwrap();
    assert_eq!(len, h.len());
    assert_eq!(
        got,
        Header::Proxied {
            source: sa("[2001:db8::7]:4000"),
            destination: sa("[2001:db8::1]:3306"),
        }
    );
    assert_eq!(
        parse(b"PROXY UNKNOWN\r\n").unwrap(),
        Some((Header::Local, 15))
    );
}

#[test]
fn v1_incomplete_then_complete() {
    let h = b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 6033\r\n";
    for cut in [1, 5, 6, 20, h.len() - 1] {
        assert_eq!(parse(&h[..cut]).unwrap(), None, "cut at {cut}");
    }
}

#[test]
fn v1_malformed() {
    for bad in [
        &b"PROXY TCP4 192.0.2.7 10.0.0.1 51000\r\n"[..],
        b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 051000 6033\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 70000 6033\r\n",
        b"PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2 3\r\n",
    ] {
        assert!(
            matches!(parse(bad), Err(ProxyHeaderError::BadV1(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
    assert_eq!(parse(&long), Err(ProxyHeaderError::TooLong(107)));
}

fn v2(cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut v = V2_SIGNATURE.to_vec();
    v.push(0x20 | cmd);
    v.push(family);
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

#[test]
fn v2_tcp4_with_tlvs_skipped() {
    let mut body = vec![192, 0, 2, 7, 10, 0, 0, 1, 0xc7, 0x38, 0x17, 0x91];
    body.extend_from_slice(&[0x04, 0x00, 0x02, 0xaa, 0xbb]); // a TLV (NOOP)
    let h = v2(1, 0x11, &body);
    let (got, len) = parse(&h).unwrap().unwrap();
    assert_eq!(len, h.len());
    assert_eq!(
        got,
        Header::Proxied {
            source: sa("192.0.2.7:51000"),
            destination: sa("10.0.0.1:6033"),
        }
    );
    assert_eq!(parse(&h[..h.len() - 1]).unwrap(), None);
    assert_eq!(parse(&h[..10]).unwrap(), None);
}

#[test]
fn v2_tcp6_local_and_unspec() {
    let mut body = Vec::new();
    body.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
    body.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    body.extend_from_slice(&[0x0f, 0xa0, 0x0c, 0xea]);
    let (got, _) = parse(&v2(1, 0x21, &body)).unwrap().unwrap();
    assert_eq!(
        got,
        Header::Proxied {
            source: sa("[2001:db8::7]:4000"),
            destination: sa("[2001:db8::1]:3306"),
        }
    );
    assert_eq!(parse(&v2(0, 0x00, &[])).unwrap(), Some((Header::Local, 16)));
    assert_eq!(parse(&v2(1, 0x00, &[])).unwrap(), Some((Header::Local, 16)));
}

#[test]
fn v2_malformed() {
    assert!(matches!(
        parse(&v2(1, 0x11, &[1, 2, 3])),
        Err(ProxyHeaderError::BadV2(_))
    ));
    assert!(matches!(
        parse(&v2(5, 0x11, &[0; 12])),
        Err(ProxyHeaderError::BadV2(_))
    ));
    let mut h = v2(1, 0x11, &[0; 12]);
    h[12] = 0x11; // version 1 in a v2 header
    assert!(matches!(parse(&h), Err(ProxyHeaderError::BadV2(_))));
    let mut h = v2(1, 0x11, &[0; 12]);
    h[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    assert!(matches!(parse(&h), Err(ProxyHeaderError::TooLong(_))));
}

#[test]
fn a_mysql_handshake_response_is_not_a_header() {
    // length 80, sequence id 1, then capability flags
    let hr = [0x50, 0x00, 0x00, 0x01, 0x85, 0xa6, 0xff, 0x01];
    assert_eq!(parse(&hr), Err(ProxyHeaderError::NotAHeader));
    assert!(!looks_like_header(&hr));
    assert!(looks_like_header(b"PROX"));
    assert!(looks_like_header(&V2_SIGNATURE[..3]));
}
