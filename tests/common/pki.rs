//! Test certificates made with rcgen: a CA and a server certificate it
//! signed (optionally revoked by a CRL in the CA file), written as PEM files
//! into a directory the test owns.

use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, Certificate, CertificateParams,
    CertificateRevocationListParams, DnType, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};

/// The serial number of every leaf (one leaf per CA).
const LEAF_SERIAL: u64 = 7;

/// PEM files of one CA and one leaf certificate it issued.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA named `tag` and a certificate for `names` (DNS names or IP
/// addresses), as `<dir>/<tag>-{ca,cert,key}.pem`.
pub fn issue(dir: &Path, tag: &str, names: &[&str]) -> Pki {
    issue_with(dir, tag, names, false)
}

/// As [`issue`], with a CRL that revokes the leaf appended to the CA file.
pub fn issue_revoked(dir: &Path, tag: &str, names: &[&str]) -> Pki {
    issue_with(dir, tag, names, true)
}

fn issue_with(dir: &Path, tag: &str, names: &[&str], revoked: bool) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{tag} test CA"));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut leaf = CertificateParams::new(names.clone()).unwrap();
    leaf.serial_number = Some(SerialNumber::from(LEAF_SERIAL));
    leaf.distinguished_name
        .push(DnType::CommonName, names[0].clone());
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let pki = Pki {
        ca: dir.join(format!("{tag}-ca.pem")),
        cert: dir.join(format!("{tag}-cert.pem")),
        key: dir.join(format!("{tag}-key.pem")),
    };
    let mut ca_pem = ca_cert.pem();
    if revoked {
        ca_pem += &revoking_the_leaf(&ca_cert, &ca_key);
    }
    std::fs::write(&pki.ca, ca_pem).unwrap();
    std::fs::write(&pki.cert, cert.pem()).unwrap();
    std::fs::write(&pki.key, key.serialize_pem()).unwrap();
    pki
}

/// A CRL of `ca` (PEM) that revokes the leaf.
fn revoking_the_leaf(ca: &Certificate, ca_key: &KeyPair) -> String {
    let long_ago = date_time_ymd(2020, 1, 1);
    let revoked = RevokedCertParams {
        serial_number: SerialNumber::from(LEAF_SERIAL),
        revocation_time: long_ago,
        reason_code: None,
        invalidity_date: None,
    };
    let crl = CertificateRevocationListParams {
        this_update: long_ago,
        next_update: date_time_ymd(2099, 1, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![revoked],
        key_identifier_method: KeyIdMethod::Sha256,
    };
    crl.signed_by(ca, ca_key).unwrap().pem().unwrap()
}

/// A path as the string config keys take.
pub fn s(p: &Path) -> String {
    p.display().to_string()
}
