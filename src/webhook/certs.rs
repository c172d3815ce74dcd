//! Certificates for the webhook: a private CA and a serving certificate
//! signed by it, ECDSA P-256 (about three times cheaper than RSA-2048 for
//! the full handshake kube-apiserver does on every new connection).
//!
//! Used by the `certs` subcommand (for a cluster Service) and by
//! `serve --dev` (for localhost), and by the tests.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// rcgen refused the parameters or failed to sign.
    #[error("cannot generate certificate: {0}")]
    Generate(rcgen::Error),
    /// A file could not be written.
    #[error("cannot write {path}: {cause}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
}

/// How long generated certificates are valid.
const VALIDITY_DAYS: i64 = 365;

/// A certificate authority held in memory.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

/// A signed serving certificate and its key, PEM-encoded.
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8). Never log it.
    pub key_pem: String,
}

impl From<rcgen::Error> for CertsError {
    fn from(err: rcgen::Error) -> Self {
        CertsError::Generate(err)
    }
}

/// Valid from five minutes ago (clock skew) for [`VALIDITY_DAYS`].
fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
}

impl Authority {
    /// Generates a new CA with the given common name.
    pub fn generate(common_name: &str) -> Result<Self, CertsError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params);
        let cert = params.self_signed(&key)?;
        Ok(Authority {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM-encoded (what goes into a `caBundle`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a serving certificate for `hosts` (DNS names or IP addresses),
    /// valid from five minutes ago for a year.
    pub fn issue(&self, hosts: &[String]) -> Result<Issued, CertsError> {
        let now = time::OffsetDateTime::now_utc();
        self.issue_for(
            hosts,
            now - time::Duration::minutes(5),
            now + time::Duration::days(VALIDITY_DAYS),
        )
    }

    /// Issues a serving certificate for `hosts` valid from `not_before` to
    /// `not_after` (tests use it for expired and future certificates).
    pub fn issue_for(
        &self,
        hosts: &[String],
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Result<Issued, CertsError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = hosts
            .iter()
            .map(|h| match h.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => h.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        if let Some(first) = hosts.first() {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The DNS names kube-apiserver may dial for a Service.
pub fn service_hosts(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// The names a local development server answers to.
pub fn dev_hosts() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
}

/// Paths of the files [`write_set`] produces.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// `ca.crt`
    pub ca: PathBuf,
    /// `tls.crt`
    pub cert: PathBuf,
    /// `tls.key`
    pub key: PathBuf,
}

impl CertFiles {
    /// The standard names inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        CertFiles {
            ca: dir.join("ca.crt"),
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }
    }
}

/// Makes a localhost certificate set for `cert`/`key` (the CA as `ca.crt`
/// beside `cert`) unless both files are there. Returns the files written,
/// or `None` when they already existed. For `serve --dev` and the
/// benchmark servers.
pub fn ensure_dev_set(cert: &Path, key: &Path) -> Result<Option<CertFiles>, CertsError> {
    if cert.exists() && key.exists() {
        return Ok(None);
    }
    let dir = cert.parent().unwrap_or(Path::new("."));
    let files = CertFiles {
        ca: dir.join("ca.crt"),
        cert: cert.to_owned(),
        key: key.to_owned(),
    };
    write_set(&files, &dev_hosts())?;
    Ok(Some(files))
}

/// Generates a CA and a serving certificate for `hosts` and writes
/// `ca.crt`, `tls.crt` and `tls.key` (mode 0600) to the given paths.
/// Returns the CA certificate PEM.
pub fn write_set(files: &CertFiles, hosts: &[String]) -> Result<String, CertsError> {
    let ca = Authority::generate("pull-secret-injector CA")?;
    let issued = ca.issue(hosts)?;
    for path in [&files.ca, &files.cert, &files.key] {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|cause| CertsError::Write {
                path: parent.to_owned(),
                cause,
            })?;
        }
    }
    write_file(&files.ca, ca.cert_pem(), false)?;
    write_file(&files.cert, &issued.cert_pem, false)?;
    write_file(&files.key, &issued.key_pem, true)?;
    Ok(ca.cert_pem().to_owned())
}

fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), CertsError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    options
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(|cause| CertsError::Write {
            path: path.to_owned(),
            cause,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::tls::CertStore;

    #[test]
    fn service_certificate_names_every_service_dns_form() {
        assert_eq!(
            service_hosts("psi", "ops"),
            ["psi", "psi.ops", "psi.ops.svc", "psi.ops.svc.cluster.local"]
        );
    }

    #[test]
    fn written_set_loads_as_a_serving_pair() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = CertFiles::in_dir(&dir.path().join("nested"));
        let ca = write_set(&files, &dev_hosts()).expect("written");
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        CertStore::load(&files.cert, &files.key).expect("loads");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&files.key)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
