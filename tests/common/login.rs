//! The sandbox's app user as a mysql_async client logs in: shared by the
//! integration tests (`common::app_opts`) and the Rust benches (which
//! include this file with `#[path]`).

use mysql_async::OptsBuilder;
use mysql_zk_proxy_sandbox::cluster::{APP_PASS, APP_USER};

/// The sandbox's app user on 127.0.0.1:`port`, schema `app`, over TCP only
/// (no socket probe).
pub fn app_login(port: u16) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(APP_USER))
        .pass(Some(APP_PASS))
        .db_name(Some("app"))
        .prefer_socket(false)
}
