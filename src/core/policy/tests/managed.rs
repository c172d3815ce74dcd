//! The top-level `secrets:` list (managed secrets): valid documents and
//! every validation error with its location.

use super::{compiled, errors_of};
use crate::core::policy::{ManagedSecret, parse};

const DESIGN_EXAMPLE: &str = r#"
secrets:                                        # optional
  - name: dockerhub-creds                       # the name rules use and every copy gets
    from: pull-secret-injector/dockerhub-creds  # source Secret, NAMESPACE/NAME
rules:
  - name: dockerhub
    registries: [docker.io]
    secrets: [dockerhub-creds]
    namespaces: {exclude: [sandbox]}
"#;

fn managed(name: &str, namespace: &str, source: &str) -> ManagedSecret {
    ManagedSecret {
        name: name.into(),
        from_namespace: namespace.into(),
        from_name: source.into(),
    }
}

#[test]
fn the_design_example_is_valid_and_keeps_document_order() {
    let policy = parse(DESIGN_EXAMPLE).expect("valid");
    assert_eq!(
        policy.secrets(),
        [managed(
            "dockerhub-creds",
            "pull-secret-injector",
            "dockerhub-creds"
        )]
    );
    let text = "rules: []\nsecrets:\n- {name: b.x, from: ops/b}\n- {name: a, from: \"ops/a.y\"}\n";
    let compiled = compiled(text);
    let names: Vec<&str> = compiled
        .managed_secrets()
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["b.x", "a"]);
    assert_eq!(
        compiled.managed("a").map(ManagedSecret::source),
        Some("ops/a.y".to_owned())
    );
    assert!(compiled.managed("c").is_none());
}

#[test]
fn secrets_is_optional_and_may_be_empty() {
    assert!(parse("rules: []\n").expect("valid").secrets().is_empty());
    assert!(
        parse("rules: []\nsecrets: []\n")
            .expect("valid")
            .secrets()
            .is_empty()
    );
}

#[test]
fn a_rule_may_name_secrets_that_are_not_managed() {
    let text = "secrets:\n- {name: hub, from: ops/hub}\nrules:\n- {name: r, registries: [docker.io], secrets: [hub, own]}\n";
    let policy = compiled(text);
    assert!(policy.managed("hub").is_some());
    assert!(policy.managed("own").is_none());
    assert_eq!(policy.rules()[0].registries(), ["docker.io"]);
}

/// (document, every expected error as displayed).
const CASES: &[(&str, &[&str])] = &[
    (
        "rules: []\nsecret: []\n",
        &[
            "2:1: unknown field \"secret\" (did you mean \"secrets\"?); known fields: rules, secrets",
        ],
    ),
    (
        "rules: []\nsecrets:\n",
        &["2:1: secrets: expected a list of managed secrets (name and from), found null"],
    ),
    (
        "rules: []\nsecrets: {name: a}\n",
        &["2:10: secrets: expected a list of managed secrets (name and from), found a mapping"],
    ),
    (
        "rules: []\nsecrets:\n- hub\n- {name: a}\n- {from: ops/a}\n- {name: b, from: ops/b, type: x}\n",
        &[
            "3:3: secrets[0]: expected a managed secret (a mapping with name and from), found \"hub\"",
            "4:3: secrets[1]: missing required field \"from\"",
            "5:3: secrets[2]: missing required field \"name\"",
            "6:26: secrets[3]: unknown field \"type\"; known fields: name, from",
        ],
    ),
    (
        "rules: []\nsecrets:\n- name: Hub_Creds\n  from: ops/hub\n- name: ''\n  from: ops/x\n- name: ~\n  from: ops/y\n",
        &[
            "3:9: secrets[0].name: invalid secret name \"Hub_Creds\": uppercase letter 'H' is not allowed; names are lowercase",
            "5:9: secrets[1].name: invalid secret name \"\": must not be empty",
            "7:9: secrets[2].name: expected a secret name, found null",
        ],
    ),
    (
        "rules: []\nsecrets:\n- {name: a, from: hub}\n- {name: b, from: /hub}\n- {name: c, from: ops/}\n- {name: d, from: Ops/hub}\n- {name: e, from: ops.x/hub}\n- {name: f, from: ops/a/b}\n- {name: g, from: [ops/hub]}\n",
        &[
            "3:19: secrets[0].from: invalid source \"hub\": expected NAMESPACE/NAME",
            "4:19: secrets[1].from: invalid source \"/hub\": namespace \"\": must not be empty",
            "5:19: secrets[2].from: invalid source \"ops/\": secret name \"\": must not be empty",
            "6:19: secrets[3].from: invalid source \"Ops/hub\": namespace \"Ops\": uppercase letter 'O' is not allowed; names are lowercase",
            "7:19: secrets[4].from: invalid source \"ops.x/hub\": namespace \"ops.x\": character '.' is not allowed; use lowercase letters, digits and '-'",
            "8:19: secrets[5].from: invalid source \"ops/a/b\": secret name \"a/b\": character '/' is not allowed; use lowercase letters, digits and '-'",
            "9:19: secrets[6].from: expected a source Secret as NAMESPACE/NAME, found a list",
        ],
    ),
    (
        "secrets:\n- {name: hub, from: ops/hub}\n- {name: ghcr, from: ops/ghcr}\n- {name: hub, from: ops/other}\nrules: []\n",
        &["4:10: secrets[2].name: duplicate managed secret \"hub\" (first defined at line 2)"],
    ),
    (
        // Errors in both lists come in document order.
        "secrets:\n- {name: A, from: ops/a}\nrules:\n- {name: r, registries: [], secrets: [a]}\n",
        &[
            "2:10: secrets[0].name: invalid secret name \"A\": uppercase letter 'A' is not allowed; names are lowercase",
            "4:25: rules[0].registries: must not be empty; list at least one host pattern",
        ],
    ),
    ("secrets: []\n", &["1:1: missing required field \"rules\""]),
];

#[test]
fn every_error_is_located() {
    for (text, expected) in CASES {
        assert_eq!(errors_of(text), *expected, "--- text ---\n{text}");
    }
}
