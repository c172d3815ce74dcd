//! Flag groups and value parsers shared by several commands, and the
//! reading of policy files and inputs for the offline ones.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use clap::Args;

use crate::core::policy::{self, CompiledPolicy, MAX_POLICY_BYTES};
use crate::runtime::files;
use crate::webhook::http::DEFAULT_MAX_BODY_BYTES;

/// Largest input the offline commands read (a Pod or AdmissionReview for
/// `mutate`, the image list on stdin for `explain`): the webhook's default
/// request body limit.
pub const MAX_INPUT_BYTES: usize = DEFAULT_MAX_BODY_BYTES;

/// Where a long-running command takes its policy from.
#[derive(Debug, Args)]
pub struct PolicySourceArgs {
    /// Policy file (YAML or JSON), re-read when it changes.
    #[arg(long, env = "PSI_POLICY_FILE", conflicts_with = "policy_configmap")]
    pub policy_file: Option<PathBuf>,
    /// Policy ConfigMap as NAMESPACE/NAME (key `policy.yaml`), watched live.
    #[arg(long, env = "PSI_POLICY_CONFIGMAP", value_name = "NAMESPACE/NAME")]
    pub policy_configmap: Option<String>,
}

/// The policy source, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// A file, re-read every reload interval.
    File(PathBuf),
    /// A ConfigMap, watched.
    ConfigMap {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl PolicySourceArgs {
    /// The one source given, or `default` when none is.
    pub fn into_source(self, default: Option<&Path>) -> anyhow::Result<PolicySource> {
        match (self.policy_file, self.policy_configmap) {
            (Some(path), None) => Ok(PolicySource::File(path)),
            (None, Some(spec)) => {
                let Some((namespace, name)) = spec
                    .split_once('/')
                    .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
                else {
                    bail!("--policy-configmap must be NAMESPACE/NAME, got {spec:?}");
                };
                Ok(PolicySource::ConfigMap {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                })
            }
            (None, None) => match default {
                Some(path) => Ok(PolicySource::File(path.to_owned())),
                None => bail!(
                    "no policy source: give --policy-file PATH or --policy-configmap NAMESPACE/NAME"
                ),
            },
            (Some(_), Some(_)) => bail!("give only one of --policy-file and --policy-configmap"),
        }
    }
}

/// Parses `500ms`, `10s`, `2m` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 500ms, 10s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?}: use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// [`parse_duration`] for settings where zero makes no sense (an interval,
/// a timeout every request would hit).
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!(
            "{text:?} is zero; give a positive duration such as 500ms or 5s"
        ));
    }
    Ok(duration)
}

/// A body limit: at least 64 KiB (a Pod review is 5–20 KB) and at most 1 GiB.
pub fn parse_body_limit(text: &str) -> Result<usize, String> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of bytes"))?;
    if !(64 * 1024..=1 << 30).contains(&n) {
        return Err(format!(
            "{n} bytes is out of range: give 65536 (64 KiB) to 1073741824 (1 GiB)"
        ));
    }
    Ok(n)
}

pub fn parse_connection_limit(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a positive number of connections")),
    }
}

pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Reads a file (of any kind: a pipe from `<(...)` works), or stdin for
/// `-`, as UTF-8 text of at most `limit` bytes. At most `limit + 1` bytes
/// are read, so `/dev/zero` or an endless pipe fails at once.
pub fn read_input(path: &Path, limit: usize) -> anyhow::Result<String> {
    let bytes = files::read_any(path, limit)?;
    Ok(files::into_text(bytes, path)?)
}

/// Reads and compiles a policy file of at most [`MAX_POLICY_BYTES`].
pub fn load_policy(path: &Path) -> anyhow::Result<CompiledPolicy> {
    let text = read_input(path, MAX_POLICY_BYTES)?;
    CompiledPolicy::from_text(&text).map_err(|errors| {
        anyhow::anyhow!(
            "invalid policy {}:\n{}",
            path.display(),
            prefixed(&errors, path)
        )
    })
}

pub fn prefixed(errors: &policy::PolicyErrors, path: &Path) -> String {
    errors
        .0
        .iter()
        .map(|e| format!("{}:{e}", path.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_positive_duration("0s").is_err());
        assert!(parse_positive_duration("0").is_err());
        assert_eq!(parse_positive_duration("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn labels_parse() {
        assert_eq!(parse_label("a=b"), Ok(("a".into(), "b".into())));
        assert_eq!(parse_label("a="), Ok(("a".into(), "".into())));
        assert!(parse_label("=b").is_err());
        assert!(parse_label("ab").is_err());
    }
}
