//! Fuzz target: the ZooKeeper primary-record parser and the users-znode
//! hash parser (both read bytes another system wrote into ZooKeeper).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mysql_zk_proxy_core::discovery::record::parse_record;
use mysql_zk_proxy_core::credentials::parse_zookeeper_user;
use mysql_zk_proxy_core::native_password::StoredHash;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = parse_record(data) {
        assert!(r.port != 0);
        assert!(!r.host.is_empty());
    }
    let _ = parse_zookeeper_user("fuzz", data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = StoredHash::parse(text);
    }
});
