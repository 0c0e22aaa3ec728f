//! ZooKeeper's TLS client port in the harness: [`ZkTlsSpec`] (the server's
//! certificate and key, the CA it trusts for client certificates, the
//! client-auth mode) as zoo.cfg lines, with the PEM key store ZooKeeper
//! reads (key and certificate in one file) written into the instance dir.

use std::path::{Path, PathBuf};

use super::{Result, SandboxError};

/// The jar the Netty connection factory needs for TLS that zookeeper.jar's
/// manifest does not list (Debian's libnetty-java, a zookeeper dependency).
pub(super) const TLS_JARS: [&str; 1] = ["/usr/share/java/netty-codec.jar"];

/// `ssl.clientAuth`: whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// Not asked for.
    #[default]
    None,
    /// Asked for; a client without one is still served.
    Want,
    /// Required: a client without one (or with an untrusted one) is refused.
    Need,
}

impl ClientAuth {
    fn as_str(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Want => "want",
            ClientAuth::Need => "need",
        }
    }
}

/// How ZooKeeper serves its secure client port.
#[derive(Debug, Clone)]
pub struct ZkTlsSpec {
    /// PEM certificate (chain) the server presents.
    pub cert: PathBuf,
    /// PEM (PKCS#8) private key of `cert`.
    pub key: PathBuf,
    /// PEM CA(s) client certificates must chain to (its trust store).
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

impl ZkTlsSpec {
    /// A server presenting `cert` (with `key`) that asks for no client certificate.
    pub fn new(cert: &Path, key: &Path) -> ZkTlsSpec {
        ZkTlsSpec {
            cert: cert.to_owned(),
            key: key.to_owned(),
            client_ca: None,
            client_auth: ClientAuth::None,
        }
    }

    /// Ask for (`Want`) or require (`Need`) client certificates issued by `ca`.
    pub fn client_auth(mut self, mode: ClientAuth, ca: &Path) -> ZkTlsSpec {
        self.client_auth = mode;
        self.client_ca = Some(ca.to_owned());
        self
    }

    /// zoo.cfg lines for a secure client port on 127.0.0.1:`port`; the key
    /// store is written as `<dir>/keystore.pem`.
    pub(super) fn config_lines(&self, dir: &Path, port: u16) -> Result<String> {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| SandboxError::io(format!("read {}", p.display()), e))
        };
        let keystore = dir.join("keystore.pem");
        let pem = format!("{}\n{}", read(&self.key)?, read(&self.cert)?);
        std::fs::write(&keystore, pem)
            .map_err(|e| SandboxError::io(format!("write {}", keystore.display()), e))?;
        let mut lines = format!(
            "secureClientPort={port}\nsecureClientPortAddress=127.0.0.1\n\
             serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
             ssl.keyStore.location={}\nssl.keyStore.type=PEM\nssl.clientAuth={}\n",
            keystore.display(),
            self.client_auth.as_str(),
        );
        if let Some(ca) = &self.client_ca {
            lines += &format!(
                "ssl.trustStore.location={}\nssl.trustStore.type=PEM\n",
                ca.display()
            );
        }
        Ok(lines)
    }
}
