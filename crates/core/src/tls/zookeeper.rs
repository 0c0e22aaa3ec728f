//! TLS towards ZooKeeper (`[zookeeper.tls]`): the CA, the optional client
//! identity and the hostname rule as zookeeper-client options that stay
//! current across a reload (its dynamic certificates), and the same trust as
//! a rustls config (ring) that discovery uses to explain a failed handshake.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ClientConfig;
use zookeeper_client::{TlsCa, TlsCerts, TlsDynamicCerts, TlsIdentity, TlsOptions};

use super::ZkTlsConfig;
use super::{
    client_config_with, parse_certs, parse_crls, parse_key, read_pem, ClientKeys, TlsError, Trust,
};

const CA: &str = "zookeeper.tls.ca";
const CERT: &str = "zookeeper.tls.cert";
const KEY: &str = "zookeeper.tls.key";

/// The ZooKeeper TLS material in force. Sessions take it at each connection
/// (also a reconnect within a session); a reload swaps it whole.
pub struct ZkTls {
    certs: TlsDynamicCerts,
    verify_hostname: bool,
    /// The same CA, identity and hostname rule, for the diagnosis handshake.
    diagnosis: ArcSwap<ClientConfig>,
}

/// The files as read once, in both forms.
pub(super) struct ZkMaterial {
    certs: TlsCerts,
    diagnosis: Arc<ClientConfig>,
}

impl ZkMaterial {
    /// Read and check `ca`, `cert` and `key`; the error names the key.
    pub(super) fn read(cfg: &ZkTlsConfig) -> Result<ZkMaterial, TlsError> {
        let ca_pem = read_pem(CA, &cfg.ca)?;
        // CA certificates and CRLs, as zookeeper-client reads the file.
        let trust = Trust {
            roots: parse_certs(CA, &cfg.ca, &ca_pem)?,
            crls: parse_crls(CA, &cfg.ca, &ca_pem)?,
        };
        let ca = TlsCa::from_pem(&ca_pem).map_err(zk_error(CA, &cfg.ca))?;
        let mut certs = TlsCerts::builder().with_ca(ca);
        let mut identity = None;
        if !cfg.cert.is_empty() {
            let cert_pem = read_pem(CERT, &cfg.cert)?;
            let key_pem = read_pem(KEY, &cfg.key)?;
            let chain = parse_certs(CERT, &cfg.cert, &cert_pem)?;
            let key = parse_key(KEY, &cfg.key, &key_pem)?;
            let zk_identity =
                TlsIdentity::from_pem(&cert_pem, &key_pem).map_err(zk_error(KEY, &cfg.key))?;
            certs = certs.with_identity(zk_identity);
            identity = Some((chain, key));
        }
        let keys = ClientKeys { ca: CA, key: KEY };
        let diagnosis = client_config_with(keys, trust, identity, !cfg.verify_hostname)?;
        let certs = certs.build().map_err(zk_error(CA, &cfg.ca))?;
        Ok(ZkMaterial { certs, diagnosis })
    }
}

fn zk_error<'a>(
    key: &'static str,
    path: &'a str,
) -> impl FnOnce(zookeeper_client::Error) -> TlsError + 'a {
    move |source| TlsError::Zookeeper {
        key,
        path: path.into(),
        source,
    }
}

impl ZkTls {
    /// Read the files named by `[zookeeper.tls]` (which must be enabled).
    pub fn from_config(cfg: &ZkTlsConfig) -> Result<ZkTls, TlsError> {
        let m = ZkMaterial::read(cfg)?;
        Ok(ZkTls {
            certs: TlsDynamicCerts::new(m.certs),
            verify_hostname: cfg.verify_hostname,
            diagnosis: ArcSwap::new(m.diagnosis),
        })
    }

    /// Put material read by [`ZkMaterial::read`] in force: connections
    /// made from now on use it, open ones keep theirs.
    pub(super) fn apply(&self, m: ZkMaterial) {
        self.certs.update(m.certs);
        self.diagnosis.store(m.diagnosis);
    }

    /// Options for `Connector::with_tls`: the dynamic certificates, so a
    /// reload reaches sessions already created.
    pub fn options(&self) -> TlsOptions {
        let options = TlsOptions::new().with_certs(self.certs.clone());
        if self.verify_hostname {
            return options;
        }
        // SAFETY: no memory-safety contract; zookeeper-client marks this
        // `unsafe` as a warning that any name is accepted. The chain is
        // still verified against zookeeper.tls.ca, as configured.
        unsafe { options.with_no_hostname_verification() }
    }

    /// The rustls config equivalent to [`ZkTls::options`] (ring provider).
    pub(crate) fn diagnosis_config(&self) -> Arc<ClientConfig> {
        self.diagnosis.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{BackendTlsConfig, ListenTlsConfig, TlsSections, TlsState};
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    /// `<dir>/ca.pem` and a leaf `cert.pem` + `key.pem` it issued, plus an
    /// unrelated `other-key.pem`.
    fn files(dir: &std::path::Path) -> ZkTlsConfig {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["proxy.example".into()]).unwrap();
        let cert = leaf.signed_by(&key, &ca, &ca_key).unwrap();
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        write(
            "other-key.pem",
            KeyPair::generate().unwrap().serialize_pem(),
        );
        ZkTlsConfig {
            enabled: true,
            ca: write("ca.pem", ca.pem()),
            verify_hostname: true,
            cert: write("cert.pem", cert.pem()),
            key: write("key.pem", key.serialize_pem()),
        }
    }

    #[test]
    fn a_key_of_another_certificate_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = files(dir.path());
        ZkTls::from_config(&cfg).unwrap();
        cfg.key = dir.path().join("other-key.pem").display().to_string();
        let e = ZkTls::from_config(&cfg).err().expect("mismatch refused");
        assert_eq!(e.key(), KEY, "{e}");
    }

    #[test]
    fn a_reload_with_a_broken_ca_is_refused_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let (listen, backend) = (ListenTlsConfig::default(), BackendTlsConfig::default());
        let zk = files(dir.path());
        let cfg = TlsSections {
            listen: &listen,
            backend: &backend,
            zookeeper: &zk,
        };
        let state = TlsState::from_config(cfg).unwrap();
        assert!(state.zookeeper().is_some());
        state.reload(cfg).unwrap();
        std::fs::write(&zk.ca, "not a certificate").unwrap();
        let e = state.reload(cfg).unwrap_err();
        assert_eq!(e.key(), CA, "{e}");
        // off: nothing is read, nothing is kept
        let off_zk = ZkTlsConfig::default();
        let off = TlsState::from_config(TlsSections {
            zookeeper: &off_zk,
            ..cfg
        })
        .unwrap();
        assert!(off.zookeeper().is_none());
    }
}
