//! Light fuzzing: random bytes, random YAML-ish tokens and mutations of a
//! valid policy must never panic, and every error must carry a location.

use std::collections::BTreeMap;

use super::scale::Rng;
use crate::core::policy::{CompiledPolicy, NamespaceFacts, RuleIds, parse};

const SEED: &str = r#"rules:
  - name: corp-harbor
    registries: [harbor.corp.example, "*.corp.example:5000", "[::1]:5000"]
    repositories: ["team-a/**", "*/app-*"]
    secrets: [harbor-pull]
    namespaces:
      include: ["team-a-*", "prod"]
      exclude: ["team-a-sandbox"]
      selector:
        matchLabels: {registry-access: harbor}
        matchExpressions: [{key: tier, operator: In, values: [prod]}]
  - {name: dockerhub, registries: [docker.io], secrets: [dockerhub-creds]}
"#;

const TOKENS: &[&str] = &[
    "rules",
    "name",
    "registries",
    "secrets",
    "namespaces",
    "selector",
    "matchLabels",
    ":",
    ": ",
    "- ",
    "-",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    "\n  ",
    "\n    ",
    "  ",
    "\t",
    "#",
    "&a ",
    "*a",
    "!!str ",
    "!x ",
    "'",
    "\"",
    "\\",
    "?",
    "|",
    ">",
    "~",
    "null",
    "---",
    "...",
    "%YAML 1.2",
    "*.x.io",
    "a..b",
    "[::1]",
    "é",
    "\u{feff}",
    "\r\n",
    "0x",
    "1e9",
    "true",
    "@",
    "`",
    "%",
];

/// Checks the contract on any input: no panic, located errors, and a usable
/// compiled policy when valid.
fn exercise(text: &str) {
    match parse(text) {
        Err(errors) => {
            assert!(
                !errors.0.is_empty(),
                "no errors for an invalid policy: {text:?}"
            );
            for e in &errors.0 {
                assert!(
                    e.line >= 1 && e.column >= 1 && !e.message.is_empty(),
                    "{e:?} for {text:?}"
                );
            }
            let _ = errors.to_string();
        }
        Ok(policy) => {
            let compiled = CompiledPolicy::compile(policy);
            let labels = BTreeMap::from([("tier".to_string(), "prod".to_string())]);
            let mut out = RuleIds::new();
            for (registry, repository) in [
                ("harbor.corp.example", "team-a/x"),
                ("x.corp.example:5000", "a/app-1"),
                ("[::1]:5000", ""),
                ("docker.io", "library/nginx"),
                ("", "/"),
            ] {
                out.clear();
                compiled.match_image(registry, repository, &mut out);
                assert!(out.windows(2).all(|w| w[0] < w[1]), "{out:?}");
                assert!(out.iter().all(|&i| i < compiled.rules().len()));
            }
            for rule in compiled.rules() {
                for labels in [None, Some(&labels)] {
                    let _ = rule.namespace_match(&NamespaceFacts {
                        name: "prod",
                        labels,
                    });
                }
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0xF00D_F00D_1234_5678);
    for _ in 0..2_000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        exercise(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn random_yaml_tokens_never_panic() {
    let mut rng = Rng(0xABCD_EF01_2345_6789);
    for _ in 0..3_000 {
        let n = rng.below(40);
        let text: String = (0..n).map(|_| TOKENS[rng.below(TOKENS.len())]).collect();
        exercise(&text);
    }
}

#[test]
fn mutated_policies_never_panic() {
    let mut rng = Rng(0x1357_9BDF_2468_ACE0);
    exercise(SEED);
    assert!(parse(SEED).is_ok());
    for _ in 0..3_000 {
        let mut text = SEED.to_string();
        for _ in 0..1 + rng.below(4) {
            let mut at = rng.below(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match rng.below(3) {
                0 => text.insert_str(at, TOKENS[rng.below(TOKENS.len())]),
                1 => {
                    let mut end = (at + 1 + rng.below(8)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(at..end, "");
                }
                _ => {
                    let token = TOKENS[rng.below(TOKENS.len())];
                    let mut end = (at + token.len()).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(at..end, token);
                }
            }
        }
        exercise(&text);
    }
}
