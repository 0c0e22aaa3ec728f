//! Why a ZooKeeper TLS connection failed. zookeeper-client reports a failed
//! handshake only as "no hosts available" (the cause goes to its trace log),
//! so after a failed session attempt with `[zookeeper.tls]` on, discovery
//! makes one TLS handshake of its own with each server — same CA, client
//! identity and hostname rule — and reports what each one said, with a hint
//! naming what to check.

use std::fmt;
use std::io;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::tls::ZkTls;

/// How long a server may take to refuse a handshake that completed on the
/// client's side (with TLS 1.3 it checks the client certificate then).
const ALERT_WAIT: Duration = Duration::from_millis(500);

/// The failures found, one per server that has one.
#[derive(Debug, thiserror::Error)]
#[error("{}", join(.0))]
pub struct Diagnosis(pub Vec<EndpointFailure>);

fn join(failures: &[EndpointFailure]) -> String {
    let each: Vec<String> = failures.iter().map(ToString::to_string).collect();
    each.join("; ")
}

/// What went wrong with one server.
#[derive(Debug, thiserror::Error)]
#[error("{endpoint}: {stage}: {source}{hint}")]
pub struct EndpointFailure {
    /// `host:port` as in `zookeeper.connect`.
    pub endpoint: String,
    stage: Stage,
    hint: Hint,
    #[source]
    source: io::Error,
}

#[derive(Debug, Clone, Copy)]
enum Stage {
    Connect,
    Handshake,
    Closed,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "TCP connect failed",
            Stage::Handshake => "TLS handshake failed",
            Stage::Closed => "the server ended the TLS connection after the handshake",
        })
    }
}

/// The likely cause, in terms of the settings to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    None,
    UnknownCa,
    WrongName,
    Validity,
    Revoked,
    NotTls,
    ClientCertRefused,
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Hint::None => return Ok(()),
            Hint::UnknownCa => {
                "the server's certificate does not chain to a CA in zookeeper.tls.ca"
            }
            Hint::WrongName => {
                "the server's certificate does not carry this host name or IP: connect by a \
                 name it carries, or set zookeeper.tls.verify_hostname = false"
            }
            Hint::Validity => "a certificate is expired or not yet valid (check the clocks too)",
            Hint::Revoked => "the server's certificate is revoked by a CRL in zookeeper.tls.ca",
            Hint::NotTls => {
                "not a TLS port? zookeeper.connect must name ZooKeeper's secureClientPort"
            }
            Hint::ClientCertRefused => {
                "the server refused this proxy's client certificate or its absence: set \
                 zookeeper.tls.cert and key to a certificate its trust store accepts"
            }
        };
        write!(f, " ({text})")
    }
}

/// The likely cause of a handshake or read error.
fn hint_for(e: &io::Error) -> Hint {
    use AlertDescription as A;
    use CertificateError as C;
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            C::UnknownIssuer => Hint::UnknownCa,
            C::NotValidForName | C::NotValidForNameContext { .. } => Hint::WrongName,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => Hint::Validity,
            C::Revoked => Hint::Revoked,
            _ => Hint::None,
        },
        Some(rustls::Error::AlertReceived(
            A::BadCertificate
            | A::CertificateRequired
            | A::UnknownCA
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::UnsupportedCertificate
            | A::AccessDenied,
        )) => Hint::ClientCertRefused,
        Some(rustls::Error::InvalidMessage(_)) => Hint::NotTls,
        Some(_) => Hint::None,
        None => match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => Hint::NotTls,
            _ => Hint::None,
        },
    }
}

/// Handshake with every server of `connect` (at once, each bounded by
/// `bound`); `None` when TLS works with all of them.
pub(super) async fn diagnose(tls: &ZkTls, connect: &str, bound: Duration) -> Option<Diagnosis> {
    let mut probes = tokio::task::JoinSet::new();
    for (i, (host, port)) in servers(connect).into_iter().enumerate() {
        let connector = TlsConnector::from(tls.diagnosis_config());
        probes.spawn(async move { (i, probe(connector, host, port, bound).await) });
    }
    let mut found = Vec::new();
    while let Some(joined) = probes.join_next().await {
        if let Ok((i, Some(failure))) = joined {
            found.push((i, failure));
        }
    }
    found.sort_by_key(|(i, _)| *i);
    let failures: Vec<EndpointFailure> = found.into_iter().map(|(_, f)| f).collect();
    (!failures.is_empty()).then_some(Diagnosis(failures))
}

/// `(host, port)` of each server of a connect string (the chroot dropped,
/// IPv6 brackets removed).
fn servers(connect: &str) -> Vec<(String, u16)> {
    let hosts = connect.split('/').next().unwrap_or_default();
    hosts
        .split(',')
        .filter_map(|h| {
            let (host, port) = h.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

/// One handshake as zookeeper-client makes it, then a short read for a
/// refusal the server sends once the handshake is over.
async fn probe(
    tls: TlsConnector,
    host: String,
    port: u16,
    bound: Duration,
) -> Option<EndpointFailure> {
    let endpoint = format!("{host}:{port}");
    let failure = |stage, hint, source| {
        Some(EndpointFailure {
            endpoint: endpoint.clone(),
            stage,
            hint,
            source,
        })
    };
    // The name zookeeper-client verifies; validation refused any other.
    let name = ServerName::try_from(host.clone()).ok()?;
    let tcp = match tokio::time::timeout(bound, TcpStream::connect((host.as_str(), port))).await {
        Err(_) => return failure(Stage::Connect, Hint::None, timed_out(bound)),
        Ok(Err(e)) => return failure(Stage::Connect, Hint::None, e),
        Ok(Ok(tcp)) => tcp,
    };
    let mut stream = match tokio::time::timeout(bound, tls.connect(name, tcp)).await {
        Err(_) => return failure(Stage::Handshake, Hint::None, timed_out(bound)),
        Ok(Err(e)) => return failure(Stage::Handshake, hint_for(&e), e),
        Ok(Ok(stream)) => stream,
    };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(ALERT_WAIT.min(bound), stream.read(&mut byte)).await {
        // Quiet (it waits for our ConnectRequest) or talking: TLS works.
        Err(_) | Ok(Ok(1..)) => None,
        Ok(Ok(0)) => failure(
            Stage::Closed,
            Hint::ClientCertRefused,
            io::ErrorKind::UnexpectedEof.into(),
        ),
        Ok(Err(e)) => failure(Stage::Closed, hint_for(&e), e),
    }
}

fn timed_out(after: Duration) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("no answer in {after:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_of_a_connect_string() {
        assert_eq!(
            servers("a:1,[::1]:2,10.0.0.1:3/chroot/x"),
            [
                ("a".to_owned(), 1),
                ("::1".to_owned(), 2),
                ("10.0.0.1".to_owned(), 3)
            ]
        );
    }

    #[test]
    fn hints_name_the_setting() {
        let tls = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        let unknown = tls(rustls::Error::InvalidCertificate(C::UnknownIssuer));
        assert_eq!(hint_for(&unknown), Hint::UnknownCa);
        let refused = tls(rustls::Error::AlertReceived(
            AlertDescription::BadCertificate,
        ));
        assert_eq!(hint_for(&refused), Hint::ClientCertRefused);
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(hint_for(&eof), Hint::NotTls);
        assert!(Hint::UnknownCa.to_string().contains("zookeeper.tls.ca"));
        assert!(Hint::WrongName.to_string().contains("verify_hostname"));
        assert_eq!(Hint::None.to_string(), "");
    }

    use rustls::CertificateError as C;
}
