//! `check-policy FILE`: validates a policy file and prints every error with
//! its line and column.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::args::{prefixed, read_input};
use crate::core::policy::{CompiledPolicy, MAX_POLICY_BYTES};

/// Flags of `check-policy`.
#[derive(Debug, Args)]
pub struct CheckPolicyArgs {
    /// Policy file (YAML or JSON); `-` reads stdin.
    pub file: PathBuf,
}

/// Runs `check-policy`: exit 0 when valid, 1 with every error otherwise.
pub fn run(args: CheckPolicyArgs) -> ExitCode {
    let path = args.file.as_path();
    let text = match read_input(path, MAX_POLICY_BYTES) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    match CompiledPolicy::from_text(&text) {
        Ok(policy) => {
            println!(
                "{}: valid policy with {} rule(s)",
                path.display(),
                policy.rules().len()
            );
            for managed in policy.managed_secrets() {
                let used = policy
                    .rules()
                    .iter()
                    .any(|r| r.secrets().contains(&managed.name));
                if !used {
                    println!(
                        "note: managed secret {:?} is listed by no rule, so `sync` copies it nowhere",
                        managed.name
                    );
                }
            }
            for rule in policy.rules().iter().filter(|r| r.has_selector()) {
                println!(
                    "note: rule {:?} uses namespaces.selector: it is evaluated against namespace labels only when the webhook runs in a cluster (or with --namespace-label in mutate/explain); without labels it does not match",
                    rule.name()
                );
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{}", prefixed(&errors, path));
            eprintln!(
                "{}: invalid policy: {} error(s)",
                path.display(),
                errors.0.len()
            );
            ExitCode::FAILURE
        }
    }
}
