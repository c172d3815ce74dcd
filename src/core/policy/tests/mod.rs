//! Table-driven tests of the policy module through its public API: parsing,
//! every validation error with its location, host/repository/namespace
//! matching, a 10,000-rule differential test and light fuzzing.

mod errors;
mod fuzz;
mod hosts;
mod managed;
mod namespaces;
mod parsing;
mod scale;

use super::{CompiledPolicy, parse};

/// The errors of an invalid document, as displayed.
fn errors_of(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(p) => panic!("expected errors, got a valid policy: {p:?}\n--- text ---\n{text}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// Compiles a document that must be valid.
fn compiled(text: &str) -> CompiledPolicy {
    match CompiledPolicy::from_text(text) {
        Ok(p) => p,
        Err(e) => panic!("expected a valid policy, got:\n{e}\n--- text ---\n{text}"),
    }
}

/// The rules matching an image, as `match_image` returns them.
fn matching(p: &CompiledPolicy, registry: &str, repository: &str) -> Vec<usize> {
    let mut out = super::RuleIds::new();
    p.match_image(registry, repository, &mut out);
    out.to_vec()
}

/// A one-rule policy for a registry pattern (and optional repository globs).
fn one_rule(registry: &str, repositories: &[&str]) -> String {
    let mut text = format!("rules:\n- name: r\n  registries: [{registry:?}]\n  secrets: [s]\n");
    if !repositories.is_empty() {
        text.push_str(&format!("  repositories: {repositories:?}\n"));
    }
    text
}

#[test]
fn compiled_policy_is_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<CompiledPolicy>();
    check::<super::PolicyErrors>();
}
