//! The serving certificate: PEM files ⇄ a rustls certified key that can be
//! swapped while the server runs.
//!
//! [`CertStore`] loads `--tls-cert`/`--tls-key`, and [`CertStore::reload`]
//! re-reads both paths; a new pair replaces the served one only when both
//! parse, the key matches the certificate, and the certificate is valid now
//! (neither expired nor not yet valid), so a half-written rotation or a
//! stale copy never breaks the listener. Reading by path on every reload
//! follows the kubelet's `..data` symlink swap of Secret volumes. New
//! handshakes pick the current pair through [`ResolvesServerCert`]; open
//! connections keep theirs. The validity period is read with `x509-parser`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::runtime::files::{self, Digest, ReadError};

/// Largest certificate chain or key file read (a chain is a few KB).
pub const MAX_PEM_BYTES: usize = 1024 * 1024;

/// Why a certificate/key pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadCertError {
    /// A file could not be read (missing, unreadable, not a regular file,
    /// or larger than [`MAX_PEM_BYTES`]).
    #[error("{0}")]
    Read(#[from] ReadError),
    /// The certificate file holds no usable PEM certificate.
    #[error("{path}: no PEM certificate found: {reason}")]
    Cert {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The certificate is expired or not valid yet.
    #[error("{path}: the certificate is {reason}; refusing to serve it")]
    NotValidNow {
        /// The file.
        path: PathBuf,
        /// Expired when, or valid from when.
        reason: String,
    },
    /// The key file holds no usable PEM private key.
    #[error("{path}: no usable PEM private key: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The key does not belong to the certificate, or rustls rejected it.
    #[error("{cert} and {key} do not form a usable pair: {cause}")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The cause.
        cause: rustls::Error,
    },
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The files are byte-for-byte what is served.
    Unchanged,
    /// A new pair is now served.
    Replaced,
}

/// A loaded pair, with what we tell operators about it.
struct Loaded {
    key: Arc<CertifiedKey>,
    content: Digest,
    /// The leaf's notAfter, seconds since the Unix epoch.
    not_after: i64,
}

/// The served certificate, swappable at run time.
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<Loaded>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

/// The crypto provider used everywhere: `ring`, as kube's client uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl CertStore {
    /// Loads the pair at `cert_path`/`key_path`; a certificate that is not
    /// valid now is refused like a broken one.
    pub fn load(
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
    ) -> Result<Self, LoadCertError> {
        let cert_path = cert_path.into();
        let key_path = key_path.into();
        let provider = provider();
        let (cert, key) = read_files(&cert_path, &key_path)?;
        let loaded = parse_pair(&cert, &key, &cert_path, &key_path, &provider)?;
        Ok(CertStore {
            cert_path,
            key_path,
            provider,
            current: ArcSwap::from_pointee(loaded),
        })
    }

    /// Re-reads both files; swaps in the new pair only if it is valid.
    /// On error the previous pair stays in service.
    pub fn reload(&self) -> Result<Reload, LoadCertError> {
        let (cert, key) = read_files(&self.cert_path, &self.key_path)?;
        if Digest::of(&[&cert, &key]) == self.current.load().content {
            return Ok(Reload::Unchanged);
        }
        let loaded = parse_pair(&cert, &key, &self.cert_path, &self.key_path, &self.provider)?;
        self.current.store(Arc::new(loaded));
        Ok(Reload::Replaced)
    }

    /// When the served certificate expires.
    pub fn not_after(&self) -> Option<SystemTime> {
        let secs = self.current.load().not_after;
        match u64::try_from(secs) {
            Ok(after) => UNIX_EPOCH.checked_add(Duration::from_secs(after)),
            Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs())),
        }
    }

    /// Seconds since the Unix epoch at which the served certificate expires.
    pub fn not_after_unix(&self) -> Option<i64> {
        Some(self.current.load().not_after)
    }

    /// The certificate file path.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// A rustls server configuration that serves whatever pair is current,
    /// offering HTTP/2 and HTTP/1.1 (kube-apiserver speaks only the latter).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().key.clone())
    }
}

fn read_files(cert_path: &Path, key_path: &Path) -> Result<(Vec<u8>, Vec<u8>), LoadCertError> {
    Ok((
        files::read_regular(cert_path, MAX_PEM_BYTES)?,
        files::read_regular(key_path, MAX_PEM_BYTES)?,
    ))
}

fn parse_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Loaded, LoadCertError> {
    let cert_error = |reason: String| LoadCertError::Cert {
        path: cert_path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(cert_error("the file has no CERTIFICATE block".into()));
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| cert_error(format!("the first certificate does not parse: {e}")))?;
    let validity = parsed.validity();
    let now = x509_parser::time::ASN1Time::now();
    if now < validity.not_before {
        return Err(LoadCertError::NotValidNow {
            path: cert_path.to_owned(),
            reason: format!("not valid before {}", validity.not_before),
        });
    }
    if now > validity.not_after {
        return Err(LoadCertError::NotValidNow {
            path: cert_path.to_owned(),
            reason: format!("expired since {}", validity.not_after),
        });
    }
    let not_after = validity.not_after.timestamp();
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| LoadCertError::Key {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    let certified =
        CertifiedKey::from_der(chain, key, provider).map_err(|cause| LoadCertError::Pair {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            cause,
        })?;
    Ok(Loaded {
        key: Arc::new(certified),
        content: Digest::of(&[cert_pem, key_pem]),
        not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::certs;

    fn write_pair(dir: &Path, name: &str, hosts: &[&str]) -> (PathBuf, PathBuf) {
        let ca = certs::Authority::generate("test ca").expect("ca");
        let leaf = ca
            .issue(&hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            .expect("leaf");
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, leaf.cert_pem).expect("write");
        std::fs::write(&key, leaf.key_pem).expect("write");
        (cert, key)
    }

    #[test]
    fn loads_a_pair_and_reads_its_expiry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_pair(dir.path(), "a", &["localhost"]);
        let store = CertStore::load(&cert, &key).expect("loads");
        let expires = store.not_after().expect("expiry is readable");
        let in_days = expires
            .duration_since(SystemTime::now())
            .expect("in the future")
            .as_secs()
            / 86_400;
        assert!((360..=366).contains(&in_days), "{in_days} days");
    }

    #[test]
    fn mismatched_key_is_rejected_and_old_pair_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert_a, key_a) = write_pair(dir.path(), "a", &["localhost"]);
        let (_, key_b) = write_pair(dir.path(), "b", &["localhost"]);
        let store = CertStore::load(&cert_a, &key_a).expect("loads");
        let before = store.current.load().content;
        std::fs::copy(&key_b, &key_a).expect("copy");
        let err = store.reload().expect_err("mismatch");
        assert!(matches!(err, LoadCertError::Pair { .. }), "{err}");
        assert_eq!(store.current.load().content, before);
        assert!(CertStore::load(&cert_a, &key_a).is_err());
    }

    #[test]
    fn garbage_and_missing_files_give_clear_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_pair(dir.path(), "a", &["localhost"]);
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "hello").expect("write");
        let err = CertStore::load(&junk, &key).expect_err("no cert");
        assert!(err.to_string().contains("no CERTIFICATE block"), "{err}");
        let err = CertStore::load(&cert, &junk).expect_err("no key");
        assert!(err.to_string().contains("private key"), "{err}");
        let err = CertStore::load(dir.path().join("missing"), &key).expect_err("missing");
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn unchanged_files_are_not_reparsed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_pair(dir.path(), "a", &["localhost"]);
        let store = CertStore::load(&cert, &key).expect("loads");
        assert_eq!(store.reload().expect("reload"), Reload::Unchanged);
        write_pair(dir.path(), "a", &["localhost"]);
        assert_eq!(store.reload().expect("reload"), Reload::Replaced);
    }

    #[test]
    fn expired_and_future_certificates_are_refused_and_the_old_pair_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_pair(dir.path(), "a", &["localhost"]);
        let store = CertStore::load(&cert, &key).expect("loads");
        let served = store.current.load().content;
        let ca = certs::Authority::generate("test ca").expect("ca");
        let hosts = ["localhost".to_owned()];
        let now = time::OffsetDateTime::now_utc();
        let day = time::Duration::days(1);
        for (issued, says) in [
            (
                ca.issue_for(&hosts, now - 10 * day, now - day),
                "expired since",
            ),
            (
                ca.issue_for(&hosts, now + day, now + 10 * day),
                "not valid before",
            ),
        ] {
            let issued = issued.expect("issue");
            std::fs::write(&cert, &issued.cert_pem).expect("write");
            std::fs::write(&key, &issued.key_pem).expect("write");
            let err = store.reload().expect_err("not valid now");
            assert!(matches!(err, LoadCertError::NotValidNow { .. }), "{err}");
            assert!(err.to_string().contains(says), "{err}");
            assert!(err.to_string().contains("refusing to serve it"), "{err}");
            assert_eq!(store.current.load().content, served);
            let err = CertStore::load(&cert, &key).expect_err("refused at startup too");
            assert!(err.to_string().contains(says), "{err}");
        }
    }

    #[test]
    fn certificate_files_must_be_regular_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, key) = write_pair(dir.path(), "a", &["localhost"]);
        let err = CertStore::load("/dev/zero", &key).expect_err("device");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
