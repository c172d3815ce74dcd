//! `mutate`: the webhook's decision applied offline to an AdmissionReview
//! (prints the response review) or to a Pod (prints the mutated Pod).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::Value;

use super::args::{MAX_INPUT_BYTES, load_policy, parse_label, read_input};
use crate::core::decide::decide;
use crate::core::review::Review;
use crate::core::yaml;

/// Flags of `mutate`.
#[derive(Debug, Args)]
pub struct MutateArgs {
    /// Policy file (YAML or JSON).
    #[arg(long, env = "PSI_POLICY")]
    policy: PathBuf,
    /// AdmissionReview or Pod, YAML or JSON, at most 8 MiB; `-` reads stdin.
    #[arg(default_value = "-")]
    input: String,
    /// Namespace of the pod when the input names none [default: default].
    #[arg(long, env = "PSI_NAMESPACE")]
    namespace: Option<String>,
    /// A label of the namespace, for rules with a namespace selector
    /// (repeatable). Without any, such rules do not match.
    #[arg(long = "namespace-label", value_name = "KEY=VALUE", value_parser = parse_label)]
    namespace_labels: Vec<(String, String)>,
}

/// Reads YAML or JSON into JSON bytes and a value.
fn to_json(text: &str) -> anyhow::Result<(Value, bool)> {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => Ok((value, false)),
        Err(json_err) => match yaml::to_json(text) {
            Ok(value) => Ok((value, true)),
            Err(yaml_err) => bail!("input is neither JSON ({json_err}) nor YAML ({yaml_err})"),
        },
    }
}

/// Runs `mutate`.
pub fn run(args: MutateArgs) -> anyhow::Result<()> {
    let policy = load_policy(&args.policy)?;
    let text = read_input(Path::new(&args.input), MAX_INPUT_BYTES)?;
    let (mut value, was_yaml) = to_json(&text)?;
    let labels: Option<BTreeMap<String, String>> =
        (!args.namespace_labels.is_empty()).then(|| args.namespace_labels.into_iter().collect());
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let mut stdout = std::io::stdout().lock();
    if kind == "AdmissionReview" {
        if let (Some(ns), Some(request)) = (
            &args.namespace,
            value.get_mut("request").and_then(Value::as_object_mut),
        ) && request
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            request.insert("namespace".to_owned(), Value::String(ns.clone()));
        }
        let body = serde_json::to_vec(&value)?;
        let review = Review::decode(&body)?;
        let decision = decide(&review.request, &policy, labels.as_ref());
        print_warnings(&decision.warnings);
        let response: Value = serde_json::from_slice(&decision.encode(&review))?;
        serde_json::to_writer_pretty(&mut stdout, &response)?;
        writeln!(stdout)?;
        return Ok(());
    }
    if !kind.is_empty() && kind != "Pod" {
        bail!("input is a {kind}; mutate takes a Pod or an AdmissionReview");
    }
    // The Pod's own namespace wins; --namespace is for Pods that name none.
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
        .map(str::to_owned)
        .or(args.namespace)
        .unwrap_or_else(|| "default".to_owned());
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "offline",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": namespace,
            "object": &value,
        }
    });
    let body = serde_json::to_vec(&review)?;
    let review = Review::decode(&body)?;
    let decision = decide(&review.request, &policy, labels.as_ref());
    print_warnings(&decision.warnings);
    if let Some(patch) = &decision.patch {
        let ops: json_patch::Patch = serde_json::from_str(patch)?;
        json_patch::patch(&mut value, &ops).context("applying the patch")?;
    }
    if was_yaml {
        write!(stdout, "{}", yaml::from_json(&value)?)?;
    } else {
        serde_json::to_writer_pretty(&mut stdout, &value)?;
        writeln!(stdout)?;
    }
    Ok(())
}

fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}
