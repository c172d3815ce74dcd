//! Where the policy comes from, and the snapshot requests read.
//!
//! [`PolicyStore`] holds the policy in force as an immutable
//! [`PolicySnapshot`] behind an atomic pointer: requests read it without
//! locks, and a source swaps in a new one only after the text parsed,
//! validated and compiled. An invalid text never replaces the last good
//! policy. [`FileSource`] re-reads a file by path (so the kubelet's `..data`
//! symlink swap of a ConfigMap volume is seen); the ConfigMap watch lives in
//! [`crate::k8s::configmap`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::core::policy::{CompiledPolicy, MAX_POLICY_BYTES, PolicyErrors};
use crate::runtime::files::{self, Digest, ReadError};
use crate::runtime::telemetry::Metrics;

/// A compiled policy and where it came from.
#[derive(Debug)]
pub struct PolicySnapshot {
    /// The matcher.
    pub policy: CompiledPolicy,
    /// Increments with every accepted change, starting at 1.
    pub generation: u64,
    /// Where the text came from (a path or `namespace/name`).
    pub origin: String,
    content: Digest,
}

/// What [`PolicyStore::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The text is the one in force already.
    Unchanged,
    /// A new policy is in force, with this generation.
    Loaded(u64),
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadPolicyError {
    /// The file could not be read: missing, unreadable, not a regular
    /// file, or larger than [`MAX_POLICY_BYTES`].
    #[error("policy file: {0}")]
    Read(#[from] ReadError),
    /// The text is not a valid policy.
    #[error("invalid policy from {origin}:\n{errors}")]
    Invalid {
        /// Where it came from.
        origin: String,
        /// Every problem, with line and column.
        errors: PolicyErrors,
    },
}

/// The policy in force, swappable without locks on the read side.
#[derive(Debug, Default)]
pub struct PolicyStore {
    current: ArcSwapOption<PolicySnapshot>,
    generation: AtomicU64,
    /// The last text rejected (its digest and errors), so that a source
    /// offering the same bad text again (a file re-read every interval, a
    /// relist) gets the same answer without a second parse, counted once.
    last_rejected: Mutex<Option<(Digest, PolicyErrors)>>,
    metrics: Option<Arc<Metrics>>,
}

impl PolicyStore {
    /// An empty store that reports loads to `metrics`.
    pub fn with_metrics(metrics: Arc<Metrics>) -> Self {
        PolicyStore {
            metrics: Some(metrics),
            ..PolicyStore::default()
        }
    }

    /// The policy in force, if any has been loaded.
    pub fn current(&self) -> Option<Arc<PolicySnapshot>> {
        self.current.load_full()
    }

    /// The last rejection. A panic elsewhere while it was held cannot have
    /// left it half-written (it is replaced whole), so poisoning is ignored.
    fn rejected(&self) -> std::sync::MutexGuard<'_, Option<(Digest, PolicyErrors)>> {
        self.last_rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True once a valid policy has been loaded.
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// Parses, validates and compiles `text`; puts it in force if valid.
    /// On error the policy in force stays as it was.
    pub fn apply(&self, text: &str, origin: &str) -> Result<Applied, LoadPolicyError> {
        let result = self.apply_text(text, origin);
        if let Some(m) = &self.metrics {
            m.policy_source_rejected(result.is_err());
        }
        result
    }

    /// Records that the source's content cannot be used at all (an
    /// unreadable file, a deleted ConfigMap, a missing key): the policy in
    /// force stays, and `policy_source_rejected` says so.
    pub fn source_unusable(&self) {
        if let Some(m) = &self.metrics {
            m.policy_source_rejected(true);
        }
    }

    fn apply_text(&self, text: &str, origin: &str) -> Result<Applied, LoadPolicyError> {
        let content = Digest::of(&[text.as_bytes()]);
        if let Some(current) = self.current.load().as_ref()
            && current.content == content
            && current.origin == origin
        {
            *self.rejected() = None;
            return Ok(Applied::Unchanged);
        }
        let invalid = |errors| LoadPolicyError::Invalid {
            origin: origin.to_owned(),
            errors,
        };
        if let Some((digest, errors)) = self.rejected().as_ref()
            && *digest == content
        {
            return Err(invalid(errors.clone()));
        }
        let policy = match CompiledPolicy::from_text(text) {
            Ok(policy) => policy,
            Err(errors) => {
                if let Some(m) = &self.metrics {
                    m.policy_rejected();
                }
                *self.rejected() = Some((content, errors.clone()));
                return Err(invalid(errors));
            }
        };
        *self.rejected() = None;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(m) = &self.metrics {
            m.policy_loaded(generation, policy.rules().iter().map(|rule| rule.name()));
        }
        self.current.store(Some(Arc::new(PolicySnapshot {
            policy,
            generation,
            origin: origin.to_owned(),
            content,
        })));
        Ok(Applied::Loaded(generation))
    }
}

/// A policy file, re-read on demand.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
}

impl FileSource {
    /// A source reading `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSource { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file and applies it to `store`. At most
    /// [`MAX_POLICY_BYTES`] + 1 bytes are read, and only from a regular file
    /// (see [`files::read_regular`]): a FIFO, `/dev/zero` or a huge file is
    /// refused without blocking and without costing memory.
    pub fn reload(&self, store: &PolicyStore) -> Result<Applied, LoadPolicyError> {
        let text = files::read_regular(&self.path, MAX_POLICY_BYTES)
            .and_then(|bytes| files::into_text(bytes, &self.path))
            .inspect_err(|_| store.source_unusable())?;
        store.apply(&text, &self.path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "rules:\n- name: hub\n  registries: [docker.io]\n  secrets: [hub]\n";
    const OTHER: &str = "rules:\n- name: ghcr\n  registries: [ghcr.io]\n  secrets: [ghcr]\n";

    #[test]
    fn invalid_text_never_replaces_the_last_good_policy() {
        let metrics = Arc::new(Metrics::new());
        let store = PolicyStore::with_metrics(metrics.clone());
        assert!(!store.is_loaded());
        assert!(store.apply("rules: [{name: x}]", "test").is_err());
        assert!(!store.is_loaded());
        assert!(
            metrics
                .encode()
                .contains("pull_secret_injector_policy_source_rejected 1")
        );
        assert_eq!(
            store.apply(GOOD, "test").expect("valid"),
            Applied::Loaded(1)
        );
        assert!(
            metrics
                .encode()
                .contains("pull_secret_injector_policy_source_rejected 0")
        );
        let err = store
            .apply("rules:\n- name: BAD\n", "test")
            .expect_err("invalid");
        assert!(
            err.to_string().contains("invalid policy from test"),
            "{err}"
        );
        let current = store.current().expect("still loaded");
        assert_eq!(current.generation, 1);
        assert_eq!(current.policy.rules()[0].name(), "hub");
        assert!(
            metrics
                .encode()
                .contains(r#"policy_reloads_total{result="rejected"} 2"#)
        );
        // The same bad text offered again (a file re-read every interval)
        // is still refused, but counted once.
        assert!(store.apply("rules:\n- name: BAD\n", "test").is_err());
        assert!(
            metrics
                .encode()
                .contains(r#"policy_reloads_total{result="rejected"} 2"#)
        );
    }

    #[test]
    fn same_text_is_unchanged_and_new_text_bumps_generation() {
        let store = PolicyStore::default();
        assert_eq!(store.apply(GOOD, "a").expect("ok"), Applied::Loaded(1));
        assert_eq!(store.apply(GOOD, "a").expect("ok"), Applied::Unchanged);
        assert_eq!(store.apply(OTHER, "a").expect("ok"), Applied::Loaded(2));
    }

    #[test]
    fn file_source_follows_a_symlink_swap() {
        // The kubelet updates a ConfigMap volume by writing a new directory
        // and atomically re-pointing the `..data` symlink.
        let dir = tempfile::tempdir().expect("tempdir");
        let v1 = dir.path().join("..v1");
        let v2 = dir.path().join("..v2");
        std::fs::create_dir(&v1).expect("mkdir");
        std::fs::create_dir(&v2).expect("mkdir");
        std::fs::write(v1.join("policy.yaml"), GOOD).expect("write");
        std::fs::write(v2.join("policy.yaml"), OTHER).expect("write");
        let data = dir.path().join("..data");
        std::os::unix::fs::symlink("..v1", &data).expect("symlink");
        std::os::unix::fs::symlink("..data/policy.yaml", dir.path().join("policy.yaml"))
            .expect("symlink");

        let store = PolicyStore::default();
        let source = FileSource::new(dir.path().join("policy.yaml"));
        assert_eq!(source.reload(&store).expect("ok"), Applied::Loaded(1));

        let tmp = dir.path().join("..data_tmp");
        std::os::unix::fs::symlink("..v2", &tmp).expect("symlink");
        std::fs::rename(&tmp, &data).expect("atomic swap");
        assert_eq!(source.reload(&store).expect("ok"), Applied::Loaded(2));
        let current = store.current().expect("loaded");
        assert_eq!(current.policy.rules()[0].name(), "ghcr");

        std::fs::remove_file(dir.path().join("policy.yaml")).expect("rm");
        let err = source.reload(&store).expect_err("missing");
        assert!(
            err.to_string().starts_with("policy file: cannot read"),
            "{err}"
        );
        assert_eq!(store.current().expect("kept").generation, 2);
    }
}
