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
fn policy_glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| policy_glob(rest, &text[i..])),
        Some((&c, rest)) => match text.split_first() {
            Some((&t, text)) => (c == b'?' || c == t) && policy_glob(rest, text),
            None => false,
        },
    }
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

/// The pieces of Go's standard library the kubelet's matching depends on,
/// re-implemented over bytes (Go strings are bytes, and decoded
/// `%`-escapes need not be UTF-8).
///
/// Hand-written rather than taken from the `url` crate on purpose: that
/// crate follows the WHATWG URL standard, which lowercases and IDNA-maps
/// hosts, rejects or accepts different characters, treats `\` as `/`, and
/// normalizes paths — every one of which would change which keys the
/// kubelet keeps and matches. Only what `url.Parse` does to `https://…`
/// strings is mirrored here (host and path; userinfo, query and fragment
/// are checked, then dropped).
mod go {
    use std::borrow::Cow;

    /// The host and path of a parsed URL, `%`-escapes decoded.
    pub(super) struct Url {
        pub(super) host: Vec<u8>,
        pub(super) path: Vec<u8>,
    }

    /// Go's `url.Parse("https://" + s)`, reduced to host and path; `None`
    /// where Go returns an error.
    pub(super) fn parse_schemeless(s: &[u8]) -> Option<Url> {
        // Parse cuts the fragment off first and checks its escapes last.
        let (u, fragment) = match s.iter().position(|&b| b == b'#') {
            Some(i) => (&s[..i], &s[i + 1..]),
            None => (s, &[][..]),
        };
        if u.iter().any(|&b| b < 0x20 || b == 0x7f) {
            return None;
        }
        // The query goes, whether it is `?` alone or more.
        let rest = match u.iter().position(|&b| b == b'?') {
            Some(i) => &u[..i],
            None => u,
        };
        let (authority, path) = match rest.iter().position(|&b| b == b'/') {
            Some(i) => rest.split_at(i),
            None => (rest, &[][..]),
        };
        let host = parse_authority(authority)?;
        let path = unescape(path, Mode::Path)?.into_owned();
        if !fragment.is_empty() {
            unescape(fragment, Mode::Fragment)?;
        }
        Some(Url { host, path })
    }

    fn parse_authority(authority: &[u8]) -> Option<Vec<u8>> {
        let (userinfo, host) = match authority.iter().rposition(|&b| b == b'@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let host = parse_host(host)?;
        if let Some(userinfo) = userinfo {
            let valid = userinfo.iter().all(|&b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'-' | b'.'
                            | b'_'
                            | b':'
                            | b'~'
                            | b'!'
                            | b'$'
                            | b'&'
                            | b'\''
                            | b'('
                            | b')'
                            | b'*'
                            | b'+'
                            | b','
                            | b';'
                            | b'='
                            | b'%'
                            | b'@'
                    )
            });
            // Go unescapes user and password apart; a valid escape never
            // holds the `:` between them, so checking the whole is the same.
            if !valid || unescape(userinfo, Mode::UserPassword).is_none() {
                return None;
            }
        }
        Some(host)
    }

    fn parse_host(host: &[u8]) -> Option<Vec<u8>> {
        if host.first() == Some(&b'[') {
            let end = host.iter().rposition(|&b| b == b']')?;
            if !valid_optional_port(&host[end + 1..]) {
                return None;
            }
            if let Some(zone) = find(&host[..end], b"%25") {
                let mut out = unescape(&host[..zone], Mode::Host)?.into_owned();
                out.extend_from_slice(&unescape(&host[zone..end], Mode::Zone)?);
                out.extend_from_slice(&unescape(&host[end..], Mode::Host)?);
                return Some(out);
            }
        } else if let Some(colon) = host.iter().rposition(|&b| b == b':')
            && !valid_optional_port(&host[colon..])
        {
            return None;
        }
        Some(unescape(host, Mode::Host)?.into_owned())
    }

    fn valid_optional_port(port: &[u8]) -> bool {
        match port.split_first() {
            None => true,
            Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
            Some(_) => false,
        }
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mode {
        Host,
        Zone,
        Path,
        UserPassword,
        Fragment,
    }

    /// `shouldEscape(c, encodeHost)` for ASCII `c`: what a host may not
    /// hold unescaped.
    fn host_rejects(c: u8) -> bool {
        !(c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
                    | b'<'
                    | b'>'
                    | b'"'
                    | b'-'
                    | b'_'
                    | b'.'
                    | b'~'
            ))
    }

    fn unhex(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => 0,
        }
    }

    /// Go's `unescape`: checks every `%` escape (and, in hosts, every
    /// character), then decodes the escapes.
    fn unescape(s: &[u8], mode: Mode) -> Option<Cow<'_, [u8]>> {
        let mut i = 0;
        let mut escapes = false;
        while i < s.len() {
            if s[i] == b'%' {
                if i + 2 >= s.len()
                    || !s[i + 1].is_ascii_hexdigit()
                    || !s[i + 2].is_ascii_hexdigit()
                {
                    return None;
                }
                let is_25 = &s[i..i + 3] == b"%25";
                if mode == Mode::Host && unhex(s[i + 1]) < 8 && !is_25 {
                    return None;
                }
                let v = unhex(s[i + 1]) << 4 | unhex(s[i + 2]);
                if mode == Mode::Zone && !is_25 && v != b' ' && (v >= 0x80 || host_rejects(v)) {
                    return None;
                }
                escapes = true;
                i += 3;
            } else {
                if matches!(mode, Mode::Host | Mode::Zone) && s[i] < 0x80 && host_rejects(s[i]) {
                    return None;
                }
                i += 1;
            }
        }
        if !escapes {
            return Some(Cow::Borrowed(s));
        }
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            if s[i] == b'%' {
                out.push(unhex(s[i + 1]) << 4 | unhex(s[i + 2]));
                i += 3;
            } else {
                out.push(s[i]);
                i += 1;
            }
        }
        Some(Cow::Owned(out))
    }

    /// A URL as `URLsMatch` compares it: `SplitURL`'s host and port, and
    /// the path.
    #[derive(Debug, Clone)]
    pub(super) struct SplitUrl {
        host: Vec<u8>,
        port: Vec<u8>,
        pub(super) path: Vec<u8>,
        label_count: usize,
    }

    impl SplitUrl {
        pub(super) fn new(url: Url) -> Self {
            let (host, port) = match split_host_port(&url.host) {
                Some(((start, end), port)) => {
                    (url.host[start..end].to_vec(), url.host[port..].to_vec())
                }
                None => (url.host, Vec::new()),
            };
            Self {
                label_count: host.split(|&b| b == b'.').count(),
                host,
                port,
                path: url.path,
            }
        }

        pub(super) fn port(&self) -> &[u8] {
            &self.port
        }

        pub(super) fn label_count(&self) -> usize {
            self.label_count
        }

        pub(super) fn labels(&self) -> impl Iterator<Item = &[u8]> {
            self.host.split(|&b| b == b'.')
        }

        /// `URLsMatch(self, target)` without its error: a malformed label
        /// glob does not match.
        pub(super) fn matches(&self, target: &SplitUrl) -> bool {
            self.label_count == target.label_count
                && same_bytes(&self.port, &target.port)
                && target.path.starts_with(&self.path)
                && self
                    .labels()
                    .zip(target.labels())
                    .all(|(glob, label)| glob_match(glob, label) == Ok(true))
        }
    }

    /// Byte equality for the short strings compared here (ports), inline:
    /// measured much faster than a `memcmp` call per key.
    fn same_bytes(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
    }

    /// Go's `net.SplitHostPort`: the host's byte range (brackets removed)
    /// and where the port starts, or `None` on error (`SplitURL` then uses
    /// the whole text as host and an empty port).
    fn split_host_port(hp: &[u8]) -> Option<((usize, usize), usize)> {
        let colon = hp.iter().rposition(|&b| b == b':')?;
        let (host, j, k) = if hp.first() == Some(&b'[') {
            let end = hp.iter().position(|&b| b == b']')?;
            if end + 1 != colon {
                return None;
            }
            ((1, end), 1, end + 1)
        } else {
            if hp[..colon].contains(&b':') {
                return None;
            }
            ((0, colon), 0, 0)
        };
        if hp[j..].contains(&b'[') || hp[k..].contains(&b']') {
            return None;
        }
        Some((host, colon + 1))
    }

    /// A malformed glob (Go's `filepath.ErrBadPattern`).
    #[derive(Debug, PartialEq, Eq)]
    pub(super) struct BadPattern;

    const RUNE_ERROR: u32 = 0xFFFD;

    /// Go's `utf8.DecodeRune`: an invalid or short sequence is
    /// `(RuneError, 1)`; an empty one `(RuneError, 0)`.
    fn decode_rune(s: &[u8]) -> (u32, usize) {
        let Some(&b0) = s.first() else {
            return (RUNE_ERROR, 0);
        };
        if b0 < 0x80 {
            return (b0.into(), 1);
        }
        let n = match b0 {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return (RUNE_ERROR, 1),
        };
        match s.get(..n).map(std::str::from_utf8) {
            Some(Ok(text)) => (text.chars().next().map_or(RUNE_ERROR, u32::from), n),
            _ => (RUNE_ERROR, 1),
        }
    }

    /// Go's `filepath.Match` on Unix (separator `/`, `\` escapes).
    pub(super) fn glob_match(mut pattern: &[u8], mut name: &[u8]) -> Result<bool, BadPattern> {
        'pattern: while !pattern.is_empty() {
            let (star, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if star && chunk.is_empty() {
                // A trailing `*` matches the rest unless it has a `/`.
                return Ok(!name.contains(&b'/'));
            }
            if let Some(t) = match_chunk(chunk, name)? {
                // The last chunk must use up the name.
                if t.is_empty() || !pattern.is_empty() {
                    name = t;
                    continue;
                }
            }
            if star {
                let mut i = 0;
                while i < name.len() && name[i] != b'/' {
                    if let Some(t) = match_chunk(chunk, &name[i + 1..])? {
                        if pattern.is_empty() && !t.is_empty() {
                            i += 1;
                            continue;
                        }
                        name = t;
                        continue 'pattern;
                    }
                    i += 1;
                }
            }
            return Ok(false);
        }
        Ok(name.is_empty())
    }

    /// Splits off leading `*`s and the chunk up to the next `*` outside a
    /// `[...]`.
    fn scan_chunk(pattern: &[u8]) -> (bool, &[u8], &[u8]) {
        let mut p = pattern;
        let mut star = false;
        while let Some((b'*', rest)) = p.split_first() {
            p = rest;
            star = true;
        }
        let mut in_range = false;
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                b'\\' if i + 1 < p.len() => i += 1,
                b'[' => in_range = true,
                b']' => in_range = false,
                b'*' if !in_range => break,
                _ => {}
            }
            i += 1;
        }
        (star, &p[..i], &p[i..])
    }

    /// Matches one chunk at the start of `s`: `Some(rest)`, `None` for no
    /// match. The whole chunk is always read, so a malformed one is an
    /// error whatever `s` is.
    fn match_chunk<'s>(mut chunk: &[u8], mut s: &'s [u8]) -> Result<Option<&'s [u8]>, BadPattern> {
        let mut failed = false;
        while let Some(&c) = chunk.first() {
            if !failed && s.is_empty() {
                failed = true;
            }
            match c {
                b'[' => {
                    let mut r = 0;
                    if !failed {
                        let (rune, n) = decode_rune(s);
                        r = rune;
                        s = &s[n..];
                    }
                    chunk = &chunk[1..];
                    let (negated, ranges, rest) = class(chunk)?;
                    chunk = rest;
                    let hit = ranges.iter().any(|&(lo, hi)| lo <= r && r <= hi);
                    if hit == negated {
                        failed = true;
                    }
                }
                b'?' => {
                    if !failed {
                        if s[0] == b'/' {
                            failed = true;
                        }
                        let (_, n) = decode_rune(s);
                        s = &s[n..];
                    }
                    chunk = &chunk[1..];
                }
                _ => {
                    if c == b'\\' {
                        chunk = &chunk[1..];
                        if chunk.is_empty() {
                            return Err(BadPattern);
                        }
                    }
                    if !failed {
                        if chunk[0] != s[0] {
                            failed = true;
                        }
                        s = &s[1..];
                    }
                    chunk = &chunk[1..];
                }
            }
        }
        Ok(if failed { None } else { Some(s) })
    }

    type Ranges = Vec<(u32, u32)>;

    /// Reads a class after its `[`: negation, ranges, and the rest after `]`.
    fn class(mut chunk: &[u8]) -> Result<(bool, Ranges, &[u8]), BadPattern> {
        let mut negated = false;
        if let Some((b'^', rest)) = chunk.split_first() {
            negated = true;
            chunk = rest;
        }
        let mut ranges = Vec::new();
        loop {
            if let Some((b']', rest)) = chunk.split_first()
                && !ranges.is_empty()
            {
                return Ok((negated, ranges, rest));
            }
            let (lo, rest) = get_esc(chunk)?;
            chunk = rest;
            let mut hi = lo;
            if let Some((b'-', rest)) = chunk.split_first() {
                let (h, rest) = get_esc(rest)?;
                hi = h;
                chunk = rest;
            }
            ranges.push((lo, hi));
        }
    }

    /// One possibly escaped character of a class; the class must go on.
    fn get_esc(chunk: &[u8]) -> Result<(u32, &[u8]), BadPattern> {
        let mut c = match chunk.first() {
            None | Some(b'-') | Some(b']') => return Err(BadPattern),
            Some(_) => chunk,
        };
        if c[0] == b'\\' {
            c = &c[1..];
            if c.is_empty() {
                return Err(BadPattern);
            }
        }
        let (r, n) = decode_rune(c);
        if r == RUNE_ERROR && n == 1 {
            return Err(BadPattern);
        }
        let rest = &c[n..];
        if rest.is_empty() {
            return Err(BadPattern);
        }
        Ok((r, rest))
    }

    /// A label glob as steps for the coverage search, `None` if Go would
    /// call it malformed. Go's `Match` matches exactly the language of
    /// these steps on names without `/`.
    pub(super) fn glob_steps(mut pattern: &[u8]) -> Option<Vec<super::Step>> {
        use super::Step;
        let mut steps = Vec::new();
        while !pattern.is_empty() {
            let (star, mut chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if star {
                steps.push(Step::Star);
            }
            while let Some(&c) = chunk.first() {
                match c {
                    b'[' => {
                        let (negated, ranges, rest) = class(&chunk[1..]).ok()?;
                        steps.push(Step::Class { negated, ranges });
                        chunk = rest;
                    }
                    b'?' => {
                        steps.push(Step::Any);
                        chunk = &chunk[1..];
                    }
                    b'\\' => {
                        let &b = chunk.get(1)?;
                        steps.push(Step::Byte(b));
                        chunk = &chunk[2..];
                    }
                    b => {
                        steps.push(Step::Byte(b));
                        chunk = &chunk[1..];
                    }
                }
            }
        }
        Some(steps)
    }

    /// Text Go's `encoding/json` would see: each byte of an invalid UTF-8
    /// sequence becomes one U+FFFD (as `utf8.DecodeRune` steps one byte).
    pub(super) fn lossy_utf8(bytes: &[u8]) -> Cow<'_, str> {
        let mut rest = bytes;
        let mut out = String::new();
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    if out.is_empty() && rest.len() == bytes.len() {
                        return Cow::Borrowed(valid);
                    }
                    out.push_str(valid);
                    return Cow::Owned(out);
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    let bad = e.error_len().unwrap_or(after.len());
                    out.extend(std::iter::repeat_n('\u{FFFD}', bad));
                    rest = &after[bad..];
                }
            }
        }
    }

    /// Whether a non-empty `auth` passes `decodeDockerConfigFieldAuth`:
    /// padded base64 if it ends in `=` (ignoring surrounding white space),
    /// unpadded otherwise, and the decoded bytes hold a `:`.
    pub(super) fn auth_is_valid(auth: &str) -> bool {
        let padded = auth.trim().ends_with('=');
        base64_decode(auth.as_bytes(), padded).is_some_and(|decoded| decoded.contains(&b':'))
    }

    fn base64_value(c: u8) -> Option<u8> {
        match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }

    fn skip_newlines(src: &[u8], mut i: usize) -> usize {
        while i < src.len() && matches!(src[i], b'\n' | b'\r') {
            i += 1;
        }
        i
    }

    /// Go's `base64.StdEncoding` (`padded`) or `RawStdEncoding`
    /// `DecodeString`: not strict (non-zero trailing bits pass), `\r` and
    /// `\n` skipped anywhere.
    fn base64_decode(src: &[u8], padded: bool) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(src.len() / 4 * 3 + 2);
        let mut si = 0;
        while si < src.len() {
            let mut quantum = [0u8; 4];
            let mut len = 4;
            let mut j = 0;
            while j < 4 {
                if si == src.len() {
                    if j == 0 {
                        return Some(out);
                    }
                    if j == 1 || padded {
                        return None;
                    }
                    len = j;
                    break;
                }
                let c = src[si];
                si += 1;
                if let Some(v) = base64_value(c) {
                    quantum[j] = v;
                    j += 1;
                    continue;
                }
                if c == b'\n' || c == b'\r' {
                    continue;
                }
                if !padded || c != b'=' || j < 2 {
                    return None;
                }
                if j == 2 {
                    si = skip_newlines(src, si);
                    if src.get(si) != Some(&b'=') {
                        return None;
                    }
                    si += 1;
                }
                if skip_newlines(src, si) < src.len() {
                    return None;
                }
                si = src.len();
                len = j;
                break;
            }
            let v = u32::from(quantum[0]) << 18
                | u32::from(quantum[1]) << 12
                | u32::from(quantum[2]) << 6
                | u32::from(quantum[3]);
            let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
            out.extend_from_slice(&bytes[..len - 1]);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests;
