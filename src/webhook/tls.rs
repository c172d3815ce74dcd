//! The serving certificate: PEM files ⇄ a rustls certified key that can be
//! swapped while the server runs.
//!
//! [`CertStore`] loads `--tls-cert`/`--tls-key`, and [`CertStore::reload`]
//! re-reads both paths; a new pair replaces the served one only when both
//! parse and the key matches the certificate, so a half-written rotation never
//! breaks the listener. Reading by path on every reload follows the kubelet's
//! `..data` symlink swap of Secret volumes. New handshakes pick the current
//! pair through [`ResolvesServerCert`]; open connections keep theirs.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate/key pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadCertError {
    /// A file could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The certificate file holds no usable PEM certificate.
    #[error("{path}: no PEM certificate found: {reason}")]
    Cert {
        /// The file.
        path: PathBuf,
        /// What was wrong.
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
    content_hash: u64,
    not_after: Option<SystemTime>,
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
    /// Loads the pair at `cert_path`/`key_path`.
    pub fn load(
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
    ) -> Result<Self, LoadCertError> {
        let cert_path = cert_path.into();
        let key_path = key_path.into();
        let provider = provider();
        let loaded = read_pair(&cert_path, &key_path, &provider)?;
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
        if hash_pair(&cert, &key) == self.current.load().content_hash {
            return Ok(Reload::Unchanged);
        }
        let loaded = parse_pair(&cert, &key, &self.cert_path, &self.key_path, &self.provider)?;
        self.current.store(Arc::new(loaded));
        Ok(Reload::Replaced)
    }

    /// When the served certificate expires, if its validity could be read.
    pub fn not_after(&self) -> Option<SystemTime> {
        self.current.load().not_after
    }

    /// Seconds since the Unix epoch at which the served certificate expires.
    pub fn not_after_unix(&self) -> Option<i64> {
        let t = self.not_after()?;
        Some(match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        })
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
    let read = |path: &Path| {
        std::fs::read(path).map_err(|cause| LoadCertError::Read {
            path: path.to_owned(),
            cause,
        })
    };
    Ok((read(cert_path)?, read(key_path)?))
}

fn read_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Loaded, LoadCertError> {
    let (cert, key) = read_files(cert_path, key_path)?;
    parse_pair(&cert, &key, cert_path, key_path, provider)
}

fn hash_pair(cert: &[u8], key: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    cert.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

fn parse_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Loaded, LoadCertError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LoadCertError::Cert {
            path: cert_path.to_owned(),
            reason: e.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(LoadCertError::Cert {
            path: cert_path.to_owned(),
            reason: "the file has no CERTIFICATE block".into(),
        });
    };
    let not_after = not_after(leaf);
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
        content_hash: hash_pair(cert_pem, key_pem),
        not_after,
    })
}

/// Reads `tbsCertificate.validity.notAfter` from a DER certificate.
fn not_after(cert: &[u8]) -> Option<SystemTime> {
    let (_, cert_body, _) = der_tlv(cert)?;
    let (_, tbs, _) = der_tlv(cert_body)?;
    let mut rest = tbs;
    let (tag, _, after) = der_tlv(rest)?;
    // Skip the optional explicit [0] version.
    if tag == 0xa0 {
        rest = after;
    }
    // serialNumber, signature, issuer
    for _ in 0..3 {
        rest = der_tlv(rest)?.2;
    }
    let (_, validity, _) = der_tlv(rest)?;
    let (_, _, after_not_before) = der_tlv(validity)?;
    let (tag, time, _) = der_tlv(after_not_before)?;
    parse_asn1_time(tag, time)
}

/// Splits one DER TLV: (tag, contents, rest).
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn parse_asn1_time(tag: u8, bytes: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(bytes).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 if text.len() == 12 => {
            let yy: i64 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        0x18 if text.len() == 14 => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, min, sec) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3_600 + min * 60 + sec;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
        let before = store.current.load().content_hash;
        std::fs::copy(&key_b, &key_a).expect("copy");
        let err = store.reload().expect_err("mismatch");
        assert!(matches!(err, LoadCertError::Pair { .. }), "{err}");
        assert_eq!(store.current.load().content_hash, before);
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
    fn asn1_times_convert() {
        let t = parse_asn1_time(0x17, b"250102030405Z").expect("utc");
        assert_eq!(
            t.duration_since(UNIX_EPOCH).expect("after").as_secs(),
            1_735_787_045
        );
        let t = parse_asn1_time(0x18, b"20500102030405Z").expect("generalized");
        assert_eq!(
            t.duration_since(UNIX_EPOCH).expect("after").as_secs(),
            2_524_705_445
        );
        assert!(parse_asn1_time(0x17, b"2501Z").is_none());
        assert!(der_tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
    }
}
