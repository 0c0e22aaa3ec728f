//! TLS during the login: the SSLRequest the proxy sends a backend, the
//! CLIENT_SSL bit of a forwarded handshake response, and which auth steps
//! would carry a password readable (refused unless both legs are TLS).

use tokio::io::AsyncWriteExt;

use crate::session::stream::Stream;
use crate::tls::BackendTls;
use mysql_zk_proxy_protocol::caps;
use mysql_zk_proxy_protocol::handshake::Greeting;
use mysql_zk_proxy_protocol::packet_io::frame;

/// Plugins whose client answer is the password itself (or, without TLS,
/// a public-key exchange the proxy does not take part in).
const CLEARTEXT_PLUGINS: [&str; 2] = ["mysql_clear_password", "sha256_password"];

/// caching_sha2_password's "perform full authentication" (after 0x01).
const FULL_AUTH: u8 = 0x04;

/// An SSLRequest built from the head of a client's handshake response
/// (capabilities, max packet, collation, filler with MariaDB capabilities):
/// the 32 bytes a client itself sends before starting TLS.
pub(crate) fn ssl_request(response: &[u8]) -> Vec<u8> {
    let mut head = response[..response.len().min(32)].to_vec();
    head.resize(32, 0);
    set_ssl_flag(&mut head, true);
    head
}

/// Send `request` (an SSLRequest) with id `seq`, then run the TLS
/// handshake with the backend at `host`; Err is the text of a 9002.
pub(crate) async fn start_backend_tls(
    backend: &mut Stream,
    greeting: &Greeting,
    b: &BackendTls,
    host: &str,
    request: Vec<u8>,
    seq: u8,
) -> Result<(), String> {
    if !greeting.backend_ssl {
        return Err(format!(
            "primary {host} does not offer TLS (backend.tls.enabled is set)"
        ));
    }
    let name = b.server_name(host).map_err(|e| e.to_string())?;
    let sent = async {
        backend.write_all(&frame(seq, &request)).await?;
        backend.flush().await
    };
    sent.await
        .map_err(|e| format!("sending the SSL request to primary {host}: {e}"))?;
    backend
        .connect_tls(&b.connector, name)
        .await
        .map_err(|e| format!("TLS handshake with primary {host} failed: {e}"))
}

/// An SSLRequest: 32 bytes, protocol 4.1, CLIENT_SSL.
pub(crate) fn is_ssl_request(b: &[u8]) -> bool {
    let flags = b
        .get(..4)
        .map_or(0, |x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]));
    b.len() == 32 && flags & caps::CLIENT_SSL != 0
}

/// Set or clear CLIENT_SSL in a handshake response (its first 4 bytes).
pub(crate) fn set_ssl_flag(response: &mut [u8], on: bool) {
    if response.len() < 4 {
        return;
    }
    let mut flags = u32::from_le_bytes([response[0], response[1], response[2], response[3]]);
    if on {
        flags |= caps::CLIENT_SSL;
    } else {
        flags &= !caps::CLIENT_SSL;
    }
    response[..4].copy_from_slice(&flags.to_le_bytes());
}

/// Does answering `plugin`'s first challenge send the password readable?
pub(crate) fn plugin_needs_tls(plugin: &str) -> bool {
    CLEARTEXT_PLUGINS.contains(&plugin)
}

/// The readable-password step a server packet asks for, if any: an auth
/// switch to a cleartext plugin, or caching_sha2_password full authentication.
pub(crate) fn cleartext_step(payload: &[u8], plugin: &str) -> Option<String> {
    match payload {
        [0xfe, body @ ..] => {
            let nul = body.iter().position(|&b| b == 0).unwrap_or(body.len());
            let name = String::from_utf8_lossy(&body[..nul]).into_owned();
            plugin_needs_tls(&name).then_some(name)
        }
        [0x01, FULL_AUTH] if plugin == "caching_sha2_password" => {
            Some("caching_sha2_password full authentication".into())
        }
        _ => None,
    }
}

/// The 9007 message: which step and which leg is plaintext.
pub fn refusal(step: &str, client_tls: bool, backend_tls: bool) -> String {
    let legs = match (client_tls, backend_tls) {
        (false, false) => "neither the client connection nor the backend connection is TLS",
        (false, true) => "the client connection is not TLS",
        _ => "the backend connection is not TLS (backend.tls.enabled)",
    };
    format!("the server asked for {step}, which sends the password readable; refused because {legs} (both legs must be TLS)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_request_is_the_response_head_with_ssl_set() {
        let mut response = (caps::CLIENT_PROTOCOL_41 | caps::CLIENT_PLUGIN_AUTH)
            .to_le_bytes()
            .to_vec();
        response.extend_from_slice(&[0, 0, 0, 1, 45]); // max packet, collation
        response.extend_from_slice(&[0; 19]);
        response.extend_from_slice(&0x0du32.to_le_bytes()); // MariaDB caps
        response.extend_from_slice(b"app\0");
        let req = ssl_request(&response);
        assert_eq!(req.len(), 32);
        assert_eq!(&req[4..], &response[4..32]);
        let flags = u32::from_le_bytes([req[0], req[1], req[2], req[3]]);
        assert_eq!(
            flags,
            caps::CLIENT_PROTOCOL_41 | caps::CLIENT_PLUGIN_AUTH | caps::CLIENT_SSL
        );
        let mut back = req.clone();
        set_ssl_flag(&mut back, false);
        assert_eq!(&back[..4], &response[..4]);
    }

    #[test]
    fn cleartext_steps_are_recognised() {
        let switch = b"\xfemysql_clear_password\0";
        assert_eq!(
            cleartext_step(switch, "mysql_native_password").as_deref(),
            Some("mysql_clear_password")
        );
        let mut sha = b"\xfesha256_password\0".to_vec();
        sha.extend_from_slice(&[7; 20]);
        sha.push(0);
        assert!(cleartext_step(&sha, "x").is_some());
        let mut native = b"\xfemysql_native_password\0".to_vec();
        native.extend_from_slice(&[7; 20]);
        assert_eq!(cleartext_step(&native, "x"), None);
        // full authentication only means so under caching_sha2_password
        assert!(cleartext_step(&[0x01, 0x04], "caching_sha2_password").is_some());
        assert_eq!(cleartext_step(&[0x01, 0x03], "caching_sha2_password"), None);
        assert_eq!(cleartext_step(&[0x01, 0x04], "client_ed25519"), None);
        assert_eq!(cleartext_step(b"\x00\x00\x00\x02\x00\x00\x00", "x"), None);
        assert!(refusal("x", true, false).contains("backend connection is not TLS"));
    }
}
