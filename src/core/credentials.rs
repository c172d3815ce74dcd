//! Kubelet credential matching: which `auths` keys of a Pod's pull secrets
//! the kubelet would try for an image, and in which order (DESIGN §8, §10).
//!
//! Owns three things, all synchronous and over plain data:
//! - reading docker config content ([`DockerConfig::parse`]) down to its
//!   `auths` keys, accepting and rejecting exactly what the kubelet's
//!   `json.Unmarshal` does;
//! - the [`Keyring`] the kubelet builds from a Pod's pull secrets, and its
//!   [`Keyring::lookup`];
//! - the coverage check `sync` runs against policy registry patterns
//!   ([`Keyring::covers`]).
//!
//! The reference is `k8s.io/kubernetes/pkg/credentialprovider` (`config.go`,
//! `keyring.go`, `secrets/secrets.go`) and the Go standard library it leans
//! on (`encoding/json`, `encoding/base64`, `net/url`, `net.SplitHostPort`,
//! `path/filepath.Match`); the `go` submodule re-implements the needed parts
//! of the latter. Credentials are never kept: a config remembers its keys
//! only, so nothing here can leak a username, password or `auth` value, and
//! error messages never quote a value.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::image::{self, ParseImageRefError};

/// The two Secret formats of registry credentials. As in the kubelet, the
/// Secret's `type` decides which one its data is read as; the content is
/// never used to guess (except by [`DockerConfig::parse_detected`], for
/// files that come without a type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigFormat {
    /// `kubernetes.io/dockerconfigjson`, key `.dockerconfigjson`:
    /// `{"auths": {KEY: {...}}}`.
    DockerConfigJson,
    /// `kubernetes.io/dockercfg`, key `.dockercfg`: `{KEY: {...}}`.
    Dockercfg,
}

impl ConfigFormat {
    /// The format the kubelet reads a Secret of this `type` as, if any.
    pub fn from_secret_type(secret_type: &str) -> Option<Self> {
        match secret_type {
            "kubernetes.io/dockerconfigjson" => Some(Self::DockerConfigJson),
            "kubernetes.io/dockercfg" => Some(Self::Dockercfg),
            _ => None,
        }
    }

    /// The Secret `data` key the kubelet reads for this format.
    pub fn data_key(self) -> &'static str {
        match self {
            Self::DockerConfigJson => ".dockerconfigjson",
            Self::Dockercfg => ".dockercfg",
        }
    }
}

/// Why docker config content is not what the kubelet accepts. The kubelet
/// fails the whole image pull when one of a Pod's pull secrets is like this.
/// Messages name keys and fields, never values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseDockerConfigError {
    /// Not JSON at all (or nested deeper than 128 levels).
    #[error("invalid JSON: {0}")]
    Syntax(serde_json::Error),
    /// JSON, but of a shape the kubelet's decoder rejects: a non-object
    /// where an object is expected, a non-string field, an `auth` that is
    /// not base64 of `user:password`.
    #[error("unexpected content: {0}")]
    Shape(serde_json::Error),
}

/// The `auths` keys of one docker config, as written, in document order.
///
/// A key written twice in one object counts once (the kubelet decodes into
/// a Go map). Only keys are kept; the credentials are checked, then dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerConfig {
    keys: Vec<String>,
}

impl DockerConfig {
    /// Reads `.dockerconfigjson` or `.dockercfg` content the way the kubelet
    /// reads a pull secret of that type (`secrets.MakeDockerKeyring`):
    ///
    /// - empty content gives no keys (the kubelet skips such a secret);
    /// - `null` gives no keys, as does a missing `auths`; a `null` `auths`
    ///   empties what earlier `auths` members gave;
    /// - any other non-object where an object is expected is an error;
    /// - field names match case-insensitively as in Go's `encoding/json`
    ///   (`"Auths"`, `"AUTH"`; `ſ` folds to `s`), and several `auths`
    ///   members merge; unknown fields are ignored;
    /// - an entry must be an object or `null`; its `username`, `password`,
    ///   `email` and `auth` must be strings or `null`; `HttpHeaders` must map
    ///   to strings or `null`;
    /// - a non-empty `auth` must decode (Go's padded base64 when it ends in
    ///   `=`, unpadded otherwise; `\r`/`\n` ignored) to text with a `:`;
    /// - invalid UTF-8 inside strings becomes U+FFFD, byte by byte.
    ///
    /// In the `.dockercfg` format a top-level `auths` member is an ordinary
    /// key, as it is for the kubelet.
    pub fn parse(format: ConfigFormat, content: &[u8]) -> Result<Self, ParseDockerConfigError> {
        if content.is_empty() {
            return Ok(Self::default());
        }
        let text = go::lossy_utf8(content);
        let mut keys = KeySet::default();
        let mut de = serde_json::Deserializer::from_str(&text);
        let result = match format {
            ConfigFormat::DockerConfigJson => de.deserialize_any(ObjectOrNull {
                what: What::Document,
                members: JsonDocument { keys: &mut keys },
            }),
            ConfigFormat::Dockercfg => de.deserialize_any(ObjectOrNull {
                what: What::Document,
                members: AuthEntries { keys: &mut keys },
            }),
        };
        result.and_then(|_| de.end()).map_err(classify)?;
        Ok(Self { keys: keys.order })
    }

    /// Reads a docker config file that comes without a Secret type (as
    /// `explain --dockerconfig` does): a top-level object with an `auths`
    /// member (matched as Go does, case-insensitively) is read as
    /// `.dockerconfigjson` — any other top-level members are then ignored,
    /// as the kubelet ignores them in such a secret — and anything else as
    /// legacy `.dockercfg` (so `{}` and `null` give no keys).
    pub fn parse_detected(content: &[u8]) -> Result<(ConfigFormat, Self), ParseDockerConfigError> {
        let format = if content.is_empty() {
            ConfigFormat::Dockercfg
        } else {
            let text = go::lossy_utf8(content);
            let mut de = serde_json::Deserializer::from_str(&text);
            let has_auths = de.deserialize_any(HasAuths).map_err(classify)?;
            if has_auths {
                ConfigFormat::DockerConfigJson
            } else {
                ConfigFormat::Dockercfg
            }
        };
        Ok((format, Self::parse(format, content)?))
    }

    /// The `auths` keys, as written, in document order.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

fn classify(e: serde_json::Error) -> ParseDockerConfigError {
    match e.classify() {
        serde_json::error::Category::Data => ParseDockerConfigError::Shape(e),
        _ => ParseDockerConfigError::Syntax(e),
    }
}

/// One `auths` key of one config of a [`Keyring`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Credential {
    source: usize,
    key: String,
}

impl Credential {
    /// Which config it comes from: its position in the list the keyring
    /// was built from (for a Pod, the position among its pull secrets).
    pub fn source(&self) -> usize {
        self.source
    }

    /// The key as written in the config, e.g. `https://index.docker.io/v1/`.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The keyring the kubelet builds from a Pod's pull secrets
/// (`BasicDockerKeyring`, one `Add` per secret, in order), over keys only.
///
/// Each key is normalized as `Add` does: `https://` is prefixed unless the
/// key starts with `https://` or `http://` (case-sensitive), the result is
/// parsed with Go's `url.Parse` — a key that fails is dropped (see
/// [`Keyring::ignored`]) — and the key becomes the URL's host (userinfo,
/// query and fragment gone, `%`-escapes decoded) followed by its path, where
/// a leading `/v1/` or `/v2/` is cut to `/` and a path of `/` is dropped.
/// Keys from all configs that normalize alike share one index entry, in
/// config order then (within one config) document order; Go's map order
/// makes the latter random in the kubelet.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    /// One slot per distinct normalized key, sorted by descending bytes:
    /// the kubelet's `sort.Reverse(sort.StringSlice(index))`.
    index: Vec<Slot>,
    /// The slot of the normalized key `index.docker.io`, if any.
    docker_hub: Option<usize>,
    ignored: Vec<Credential>,
}

#[derive(Debug, Clone)]
struct Slot {
    /// The normalized key as the glob side of `URLsMatch` sees it; `None`
    /// when Go's `url.Parse` rejects it the second time (it then never
    /// matches, as `URLsMatchStr` returns an error).
    glob: Option<go::SplitUrl>,
    credentials: Vec<Credential>,
}

impl Keyring {
    /// Builds the keyring of a Pod whose pull secrets read as `configs`, in
    /// the Pod's order.
    pub fn new<'a>(configs: impl IntoIterator<Item = &'a DockerConfig>) -> Self {
        let mut groups: BTreeMap<Vec<u8>, Vec<Credential>> = BTreeMap::new();
        let mut ignored = Vec::new();
        for (source, config) in configs.into_iter().enumerate() {
            for key in &config.keys {
                let credential = Credential {
                    source,
                    key: key.clone(),
                };
                match normalize(key) {
                    Some(normalized) => groups.entry(normalized).or_default().push(credential),
                    None => ignored.push(credential),
                }
            }
        }
        let mut docker_hub = None;
        let index = groups
            .into_iter()
            .rev()
            .enumerate()
            .map(|(i, (normalized, credentials))| {
                if normalized == DOCKER_HUB_KEY {
                    docker_hub = Some(i);
                }
                Slot {
                    glob: go::parse_schemeless(&normalized).map(go::SplitUrl::new),
                    credentials,
                }
            })
            .collect();
        Self {
            index,
            docker_hub,
            ignored,
        }
    }

    /// Whether the keyring has no usable key.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The keys the kubelet drops because Go's `url.Parse` rejects them
    /// (e.g. `reg.io:port`, `reg.io/%zz`, a control character).
    pub fn ignored(&self) -> &[Credential] {
        &self.ignored
    }

    /// The keys whose credentials the kubelet tries when pulling `image`
    /// (the string written in the Pod spec), in the order it tries them.
    ///
    /// The image is normalized as `parsers.ParseImageName` does (Go's
    /// `ParseNormalizedNamed`, then `Name()`: tag and digest dropped,
    /// `nginx` → `docker.io/library/nginx`); an image that does not parse is
    /// an error, as the kubelet fails the pull before any lookup. Then
    /// [`Keyring::lookup_name`].
    pub fn lookup(&self, image: &str) -> Result<Vec<&Credential>, ParseImageRefError> {
        let reference = image::parse(image)?;
        let name = if reference.registry().is_empty() {
            reference.repository().to_owned()
        } else {
            format!("{}/{}", reference.registry(), reference.repository())
        };
        Ok(self.lookup_name(&name))
    }

    /// The kubelet's `BasicDockerKeyring.Lookup` on an already normalized
    /// name such as `docker.io/library/nginx`.
    ///
    /// Every index entry, most specific first (descending byte order of the
    /// normalized keys, so `reg.io/team` before `reg.io`, and `reg.io`
    /// before `*.io`), contributes all its keys when it matches: both the
    /// entry and `https://` + `name` parse with Go's `url.Parse`; the ports
    /// (from `net.SplitHostPort` of the host, empty when that fails) are
    /// equal as text; the hosts have as many `.`-separated labels; the
    /// entry's path is a string prefix of the name's path (`/team` also
    /// matches `/teamster/x`); and each entry label matches the name's label
    /// as a Go `filepath.Match` glob (case-sensitive; a malformed glob
    /// matches nothing). In a key's host only `*` and `[...]` survive
    /// `url.Parse`: `?` starts the query (`r?g.io` is the host `r`), and
    /// `\` or `^` make the key invalid.
    ///
    /// Only when nothing matched, the keys normalized to `index.docker.io`
    /// (e.g. `https://index.docker.io/v1/`) are returned if the name's first
    /// `/`-separated part is non-empty and either is `docker.io` or
    /// `index.docker.io`, or contains neither `.` nor `:` — which also
    /// sends `localhost/x` and `Foo/x` to Docker Hub's keys.
    pub fn lookup_name(&self, name: &str) -> Vec<&Credential> {
        let mut found = Vec::new();
        if let Some(target) = go::parse_schemeless(name.as_bytes()) {
            let target = go::SplitUrl::new(target);
            for slot in &self.index {
                if slot.glob.as_ref().is_some_and(|g| g.matches(&target)) {
                    found.extend(&slot.credentials);
                }
            }
        }
        if found.is_empty()
            && is_default_registry_match(name)
            && let Some(slot) = self.docker_hub.and_then(|i| self.index.get(i))
        {
            found.extend(&slot.credentials);
        }
        found
    }

    /// Whether the keyring covers a policy registry pattern (DESIGN §3),
    /// for `sync`'s `CredentialsDoNotCover` check.
    ///
    /// The pattern is taken in lowercase (as the policy stores it), with
    /// `index.docker.io` meaning `docker.io`. Only keys that apply to a
    /// whole host count — keys whose normalized path is empty — since a key
    /// such as `harbor.corp.example/team-a` leaves the host's other
    /// repositories without credentials.
    ///
    /// - An exact host `H` (with its port, if any; IPv6 literals as written)
    ///   is covered iff the kubelet would try a key for an image `H/<repo>`
    ///   whose repository is under no key's path: some whole-host key
    ///   matches `H` as in [`Keyring::lookup_name`], or else `H` gets the
    ///   Docker Hub fallback (`docker.io`, `localhost`, any single label
    ///   without port) and some key normalizes to `index.docker.io`.
    /// - A wildcard pattern is covered iff that holds for at least one host
    ///   the pattern matches: a whole-host key with the same port and label
    ///   count whose every label glob shares at least one lowercase DNS
    ///   label (letters, digits, inner `-`) with the pattern's label there;
    ///   or, with an `index.docker.io` key, the pattern matches `docker.io`
    ///   (or, for one label without port, `localhost`, the only such
    ///   registry an image can name in lowercase).
    pub fn covers(&self, pattern: &str) -> bool {
        let pattern = pattern.to_ascii_lowercase();
        let (host, port) = split_pattern(&pattern);
        let host = if host == "index.docker.io" {
            "docker.io"
        } else {
            host
        };
        let is_glob = !host.starts_with('[') && host.contains(['*', '?']);
        if !is_glob {
            let hostport = match port {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            };
            return self.covers_host(&hostport);
        }
        let labels: Vec<&str> = host.split('.').collect();
        if labels.len() == 1 && port.is_none() {
            return policy_glob(host.as_bytes(), b"localhost") && self.covers_host("localhost");
        }
        let port = port.unwrap_or("").as_bytes();
        let key_hit = self.index.iter().filter_map(|s| s.glob.as_ref()).any(|g| {
            g.path.is_empty()
                && g.port() == port
                && g.label_count() == labels.len()
                && g.labels()
                    .zip(&labels)
                    .all(|(glob, label)| labels_intersect(label.as_bytes(), glob))
        });
        key_hit
            || (self.docker_hub.is_some()
                && port.is_empty()
                && labels.len() == 2
                && policy_glob(labels[0].as_bytes(), b"docker")
                && policy_glob(labels[1].as_bytes(), b"io"))
    }

    fn covers_host(&self, hostport: &str) -> bool {
        if let Some(target) = go::parse_schemeless(hostport.as_bytes()) {
            let target = go::SplitUrl::new(target);
            let hit = self
                .index
                .iter()
                .filter_map(|s| s.glob.as_ref())
                .any(|g| g.path.is_empty() && g.matches(&target));
            if hit {
                return true;
            }
        }
        self.docker_hub.is_some() && is_default_registry_match(&format!("{hostport}/x"))
    }
}

/// The normalized key of Docker Hub's credentials (`defaultRegistryHost`).
const DOCKER_HUB_KEY: &[u8] = b"index.docker.io";

/// `BasicDockerKeyring.Add`'s key normalization; `None` when Go's
/// `url.Parse` rejects the key.
fn normalize(key: &str) -> Option<Vec<u8>> {
    let bytes = key.as_bytes();
    let rest = bytes
        .strip_prefix(b"https://")
        .or_else(|| bytes.strip_prefix(b"http://"))
        .unwrap_or(bytes);
    let url = go::parse_schemeless(rest)?;
    let mut path = &url.path[..];
    if path.starts_with(b"/v2/") || path.starts_with(b"/v1/") {
        path = &path[3..];
    }
    let mut normalized = url.host;
    if !path.is_empty() && path != b"/" {
        normalized.extend_from_slice(path);
    }
    Some(normalized)
}

/// The kubelet's `isDefaultRegistryMatch`.
fn is_default_registry_match(name: &str) -> bool {
    let (first, rest) = match name.split_once('/') {
        Some((first, _)) => (first, true),
        None => (name, false),
    };
    if first.is_empty() {
        return false;
    }
    !rest || first == "docker.io" || first == "index.docker.io" || !first.contains(['.', ':'])
}

/// Splits a policy pattern into host and optional port (`[v6]:port` aware).
fn split_pattern(pattern: &str) -> (&str, Option<&str>) {
    if pattern.starts_with('[') {
        if let Some(end) = pattern.find(']') {
            let (host, after) = pattern.split_at(end + 1);
            return (host, after.strip_prefix(':'));
        }
        return (pattern, None);
    }
    match pattern.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (pattern, None),
    }
}

/// A policy label glob (`*` any run, `?` one byte) against a label.
///
/// One pass with a single resume point (the last `*` seen), so at most
/// pattern × text steps: trying every split at every `*` recursively took
/// exponential time on a pattern of many stars (found by the
/// `credentials` fuzz target).
fn policy_glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // After the last `*`: where the pattern resumes, and the text byte the
    // star's run would end at next.
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                resume = Some((p, t));
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match resume {
                // Let the last star take one more byte and retry.
                Some((after_star, run_end)) => {
                    p = after_star;
                    t = run_end + 1;
                    resume = Some((after_star, t));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// One step of a label glob, for [`labels_intersect`].
#[derive(Debug, Clone)]
enum Step {
    /// Any run of characters.
    Star,
    /// Exactly one character.
    Any,
    /// One byte.
    Byte(u8),
    /// One character of a Go `[...]` class.
    Class {
        negated: bool,
        ranges: Vec<(u32, u32)>,
    },
}

impl Step {
    fn accepts(&self, c: u8) -> bool {
        match self {
            Step::Star | Step::Any => true,
            Step::Byte(b) => *b == c,
            Step::Class { negated, ranges } => {
                ranges
                    .iter()
                    .any(|&(lo, hi)| lo <= c.into() && u32::from(c) <= hi)
                    != *negated
            }
        }
    }
}

/// The characters of a lowercase DNS label.
const LABEL_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";

/// Whether some lowercase DNS label (non-empty; letters, digits and `-`,
/// not at either end) matches both a policy label glob and a Go
/// `filepath.Match` label glob. A breadth-first walk over the product of
/// the two globs' positions and whether the label so far is empty, ends in
/// `-`, or ends in a letter or digit.
fn labels_intersect(policy_label: &[u8], go_glob: &[u8]) -> bool {
    let policy: Vec<Step> = policy_label
        .iter()
        .map(|&c| match c {
            b'*' => Step::Star,
            b'?' => Step::Any,
            c => Step::Byte(c),
        })
        .collect();
    let Some(glob) = go::glob_steps(go_glob) else {
        return false;
    };
    let (np, ng) = (policy.len() + 1, glob.len() + 1);
    let id = |i: usize, j: usize, edge: usize| (i * ng + j) * 3 + edge;
    let mut seen = vec![false; np * ng * 3];
    let mut queue = vec![(0, 0, 0)];
    seen[id(0, 0, 0)] = true;
    while let Some((i, j, edge)) = queue.pop() {
        if i == policy.len() && j == glob.len() && edge == 1 {
            return true;
        }
        let mut next = Vec::with_capacity(4);
        if matches!(policy.get(i), Some(Step::Star)) {
            next.push((i + 1, j, edge));
        }
        if matches!(glob.get(j), Some(Step::Star)) {
            next.push((i, j + 1, edge));
        }
        for &c in LABEL_ALPHABET {
            if c == b'-' && edge == 0 {
                continue;
            }
            let (Some(p), Some(g)) = (policy.get(i), glob.get(j)) else {
                continue;
            };
            if !(p.accepts(c) && g.accepts(c)) {
                continue;
            }
            let i2 = if matches!(p, Step::Star) { i } else { i + 1 };
            let j2 = if matches!(g, Step::Star) { j } else { j + 1 };
            next.push((i2, j2, if c == b'-' { 2 } else { 1 }));
        }
        for (i2, j2, e2) in next {
            if !seen[id(i2, j2, e2)] {
                seen[id(i2, j2, e2)] = true;
                queue.push((i2, j2, e2));
            }
        }
    }
    false
}

/// The distinct keys of one config, in first-seen order.
#[derive(Default)]
struct KeySet {
    order: Vec<String>,
    seen: HashSet<String>,
}

impl KeySet {
    fn clear(&mut self) {
        self.order.clear();
        self.seen.clear();
    }

    fn insert(&mut self, key: String) {
        if !self.seen.contains(&key) {
            self.seen.insert(key.clone());
            self.order.push(key);
        }
    }
}

/// Where in a config a value sits, for error messages.
#[derive(Clone, Copy)]
enum What<'a> {
    Document,
    Auths,
    HttpHeaders,
    Header(&'a str),
    Entry(&'a str),
    Field(&'a str, &'static str),
}

impl fmt::Display for What<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::Document => f.write_str("the document"),
            What::Auths => f.write_str("\"auths\""),
            What::HttpHeaders => f.write_str("\"HttpHeaders\""),
            What::Header(name) => write!(f, "header {name:?}"),
            What::Entry(key) => write!(f, "the entry for {key:?}"),
            What::Field(key, field) => write!(f, "{field:?} of the entry for {key:?}"),
        }
    }
}

fn wrong<E: de::Error>(what: What<'_>, expected: &str, found: &str) -> E {
    E::custom(format_args!("{what} must be {expected}, found {found}"))
}

/// The visitor methods for JSON values a visitor does not accept; each
/// error names the kind of value found, never the value.
macro_rules! reject_scalars {
    ($expected:literal) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(wrong(self.what, $expected, "a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(wrong(self.what, $expected, "a number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(wrong(self.what, $expected, "a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(wrong(self.what, $expected, "a number"))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(wrong(self.what, $expected, "an array"))
        }
    };
}

/// The members of a JSON object, read by an [`ObjectOrNull`].
trait Members {
    fn read<'de, A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error>;
}

/// Accepts an object (handing its members to `M`) or `null`; the value is
/// whether it was `null` (Go then sets a map to nil, and leaves a struct
/// alone).
struct ObjectOrNull<'w, M> {
    what: What<'w>,
    members: M,
}

impl<'de, M: Members> Visitor<'de> for ObjectOrNull<'_, M> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to be an object or null", self.what)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(true)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        self.members.read(map).map(|()| false)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Err(wrong(self.what, "an object or null", "a string"))
    }

    reject_scalars!("an object or null");
}

impl<'de, M: Members> DeserializeSeed<'de> for ObjectOrNull<'_, M> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

/// Accepts a string or `null` (Go leaves a string field alone on `null`).
struct StringOrNull<'w> {
    what: What<'w>,
}

impl<'de> Visitor<'de> for StringOrNull<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to be a string or null", self.what)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(wrong(self.what, "a string or null", "an object"))
    }

    reject_scalars!("a string or null");
}

impl<'de> DeserializeSeed<'de> for StringOrNull<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Go's `encoding/json` field-name folding against an upper-case ASCII
/// field name: ASCII letters fold by case, `ſ` (U+017F) folds to `S` and
/// the Kelvin sign (U+212A) to `K`; nothing else reaches ASCII.
fn field_is(key: &str, upper: &str) -> bool {
    let mut want = upper.bytes();
    for c in key.chars() {
        let folded = match c {
            'a'..='z' => c.to_ascii_uppercase(),
            '\u{17F}' => 'S',
            '\u{212A}' => 'K',
            c => c,
        };
        if want.next().map(char::from) != Some(folded) {
            return false;
        }
    }
    want.next().is_none()
}

/// The members of a `.dockerconfigjson` document (`DockerConfigJSON`).
struct JsonDocument<'k> {
    keys: &'k mut KeySet,
}

impl Members for JsonDocument<'_> {
    fn read<'de, A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<String>()? {
            if field_is(&name, "AUTHS") {
                // A second `auths` merges into the first; a `null` one
                // empties it.
                let null = map.next_value_seed(ObjectOrNull {
                    what: What::Auths,
                    members: AuthEntries {
                        keys: &mut *self.keys,
                    },
                })?;
                if null {
                    self.keys.clear();
                }
            } else if field_is(&name, "HTTPHEADERS") {
                map.next_value_seed(ObjectOrNull {
                    what: What::HttpHeaders,
                    members: Headers,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// `HttpHeaders`: a `map[string]string`.
struct Headers;

impl Members for Headers {
    fn read<'de, A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<String>()? {
            map.next_value_seed(StringOrNull {
                what: What::Header(&name),
            })?;
        }
        Ok(())
    }
}

/// The `auths` object, or a whole `.dockercfg` (`DockerConfig`).
struct AuthEntries<'k> {
    keys: &'k mut KeySet,
}

impl Members for AuthEntries<'_> {
    fn read<'de, A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            map.next_value_seed(ObjectOrNull {
                what: What::Entry(&key),
                members: Entry { key: &key },
            })?;
            self.keys.insert(key);
        }
        Ok(())
    }
}

/// One entry (`DockerConfigEntry.UnmarshalJSON`): fields checked, `auth`
/// decoded to check it, nothing kept.
struct Entry<'k> {
    key: &'k str,
}

impl Members for Entry<'_> {
    fn read<'de, A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut auth: Option<String> = None;
        while let Some(name) = map.next_key::<String>()? {
            let field = ["USERNAME", "PASSWORD", "EMAIL", "AUTH"]
                .into_iter()
                .find(|f| field_is(&name, f));
            match field {
                Some(field) => {
                    let lower = match field {
                        "USERNAME" => "username",
                        "PASSWORD" => "password",
                        "EMAIL" => "email",
                        _ => "auth",
                    };
                    let value = map.next_value_seed(StringOrNull {
                        what: What::Field(self.key, lower),
                    })?;
                    if field == "AUTH" && value.is_some() {
                        auth = value;
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match auth {
            Some(auth) if !auth.is_empty() && !go::auth_is_valid(&auth) => {
                Err(de::Error::custom(format_args!(
                    "\"auth\" of the entry for {:?} is not base64 of \"username:password\"",
                    self.key
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Whether a document's top level is an object with an `auths` member.
struct HasAuths;

impl<'de> Visitor<'de> for HasAuths {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON document")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(name) = map.next_key::<String>()? {
            found |= field_is(&name, "AUTHS");
            map.next_value::<IgnoredAny>()?;
        }
        Ok(found)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

/// Go's `net/url` parsing, `filepath.Match` and base64 rules, as the
/// kubelet relies on them (why hand-written: see the module's docs).
mod go;

#[cfg(test)]
mod tests;
