//! `explain`: one JSON line per image saying how it normalizes and which
//! rules and secrets it gets; with `--dockerconfig`, also which `auths`
//! keys of those docker configs the kubelet would try for it (DESIGN §10).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;

use super::args::{MAX_INPUT_BYTES, load_policy, parse_label, read_input};
use crate::core::credentials::{DockerConfig, Keyring};
use crate::core::image;
use crate::core::policy::{CompiledPolicy, ManagedSecret, NamespaceFacts};
use crate::core::query::{self, Grant, Scope};
use crate::runtime::files;

/// Flags of `explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Policy file (YAML or JSON).
    #[arg(long, env = "PSI_POLICY")]
    policy: PathBuf,
    /// Apply the rules' namespace conditions for this namespace; without it
    /// they are ignored.
    #[arg(long, env = "PSI_NAMESPACE")]
    namespace: Option<String>,
    /// A label of that namespace, for namespace selectors (repeatable).
    #[arg(long = "namespace-label", value_name = "KEY=VALUE", value_parser = parse_label)]
    namespace_labels: Vec<(String, String)>,
    /// A decoded `.dockerconfigjson` or `.dockercfg` (repeatable; merged in
    /// order like a Pod's pull secrets): each line then lists the `auths`
    /// keys the kubelet would try for the image, in its order.
    #[arg(
        long = "dockerconfig",
        value_name = "FILE",
        env = "PSI_DOCKERCONFIG",
        value_delimiter = ','
    )]
    dockerconfigs: Vec<PathBuf>,
    /// Image references; without any, one per line from stdin, verbatim
    /// (at most 8 MiB).
    images: Vec<String>,
}

/// Runs `explain`.
pub fn run(args: ExplainArgs) -> anyhow::Result<()> {
    let policy = load_policy(&args.policy)?;
    let labels: Option<BTreeMap<String, String>> =
        (!args.namespace_labels.is_empty()).then(|| args.namespace_labels.into_iter().collect());
    let facts = args.namespace.as_deref().map(|name| NamespaceFacts {
        name,
        labels: labels.as_ref(),
    });
    let keyring = if args.dockerconfigs.is_empty() {
        None
    } else {
        let configs = args
            .dockerconfigs
            .iter()
            .map(|path| read_docker_config(path))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Some(Keyring::new(&configs))
    };
    let mut stdout = std::io::stdout().lock();
    let mut line = |image: &str| {
        explain_one(
            &mut stdout,
            &policy,
            facts.as_ref(),
            keyring.as_ref(),
            image,
        )
    };
    if args.images.is_empty() {
        let input =
            read_input(Path::new("-"), MAX_INPUT_BYTES).context("cannot read images from stdin")?;
        let input = input.strip_suffix('\n').unwrap_or(&input);
        if input.is_empty() {
            return Ok(());
        }
        for image in input.split('\n') {
            line(image)?;
        }
    } else {
        for image in &args.images {
            line(image)?;
        }
    }
    Ok(())
}

/// Reads one `--dockerconfig` file: only its `auths` keys are kept, and
/// errors name fields, never values.
fn read_docker_config(path: &Path) -> anyhow::Result<DockerConfig> {
    let bytes = files::read_any(path, MAX_INPUT_BYTES)
        .with_context(|| format!("cannot read --dockerconfig {}", path.display()))?;
    let (_, config) = DockerConfig::parse_detected(&bytes).with_context(|| {
        format!(
            "--dockerconfig {}: not a docker config the kubelet accepts",
            path.display()
        )
    })?;
    Ok(config)
}

/// One `explain` line, its fields in the documented order.
#[derive(Serialize)]
#[serde(untagged)]
enum Explained<'a> {
    Parsed {
        image: &'a str,
        registry: &'a str,
        repository: &'a str,
        tag: Option<&'a str>,
        digest: Option<&'a str>,
        rules: &'a [&'a str],
        secrets: &'a [&'a str],
        /// For each of `secrets`: its source (`NAMESPACE/NAME`) when the
        /// policy's `secrets:` list manages it, else null.
        managed: BTreeMap<&'a str, Option<String>>,
        /// With `--dockerconfig`: the keys the kubelet would try, in order.
        #[serde(skip_serializing_if = "Option::is_none")]
        credentials: Option<Vec<&'a str>>,
    },
    Invalid {
        image: &'a str,
        error: String,
    },
}

/// Writes the `explain` line for one image.
fn explain_one(
    out: &mut impl std::io::Write,
    policy: &CompiledPolicy,
    ns: Option<&NamespaceFacts<'_>>,
    keyring: Option<&Keyring>,
    image: &str,
) -> anyhow::Result<()> {
    let mut write = |line: &Explained<'_>| -> anyhow::Result<()> {
        serde_json::to_writer(&mut *out, line)?;
        Ok(writeln!(out)?)
    };
    let reference = match image::parse(image) {
        Ok(reference) => reference,
        Err(err) => {
            return write(&Explained::Invalid {
                image,
                error: err.to_string(),
            });
        }
    };
    let scope = match ns {
        Some(facts) => Scope::Namespace(facts),
        None => Scope::AnyNamespace,
    };
    let Grant { rules, secrets, .. } = query::secrets_for(policy, &reference, scope);
    let managed = secrets
        .iter()
        .map(|&s| (s, policy.managed(s).map(ManagedSecret::source)))
        .collect();
    // The image parsed above, so the keyring's own parse of it succeeds.
    let credentials = match keyring.map(|k| k.lookup(image)).transpose() {
        Ok(found) => found.map(|found| found.into_iter().map(|c| c.key()).collect()),
        Err(err) => {
            return write(&Explained::Invalid {
                image,
                error: err.to_string(),
            });
        }
    };
    write(&Explained::Parsed {
        image,
        registry: reference.registry(),
        repository: reference.repository(),
        tag: reference.tag(),
        digest: reference.digest(),
        rules: &rules,
        secrets: &secrets,
        managed,
        credentials,
    })
}
