//! Every kind of validation error, with its exact line, column and path.

use super::errors_of;
use crate::core::policy::{MAX_POLICY_BYTES, parse};

/// (document, every expected error as displayed).
const CASES: &[(&str, &[&str])] = &[
    // --- the document as a whole ---
    (
        "",
        &["1:1: policy is empty; expected a mapping with a \"rules\" list"],
    ),
    (
        "# only a comment\n\n",
        &["1:1: policy is empty; expected a mapping with a \"rules\" list"],
    ),
    (
        "---\n",
        &["1:1: policy is empty; expected a mapping with a \"rules\" list"],
    ),
    (
        "rules: []\n---\nrules: []\n",
        &["2:1: multiple YAML documents are not supported; put every rule in one document"],
    ),
    (
        "rules: [a, b\nx: 1\n",
        &["2:2: invalid YAML: illegal placement of ':' indicator"],
    ),
    (
        "- a\n",
        &["1:1: expected a mapping with a \"rules\" list, found a list"],
    ),
    (
        "hello\n",
        &["1:1: expected a mapping with a \"rules\" list, found \"hello\""],
    ),
    (
        "rule: []\n",
        &[
            "1:1: unknown field \"rule\" (did you mean \"rules\"?); known fields: rules, secrets",
            "1:1: missing required field \"rules\"",
        ],
    ),
    (
        "rules:\n",
        &[
            "1:1: rules: expected a list of rules, found null (write \"rules: []\" for an empty policy)",
        ],
    ),
    (
        "rules: abc\n",
        &["1:8: rules: expected a list of rules, found \"abc\""],
    ),
    (
        "rules: {}\n",
        &["1:8: rules: expected a list of rules, found a mapping"],
    ),
    // --- rule shape ---
    (
        "rules:\n  - foo\n",
        &[
            "2:5: rules[0]: expected a rule (a mapping with name, registries and secrets), found \"foo\"",
        ],
    ),
    (
        "rules:\n  - name: a\n",
        &[
            "2:5: rules[0]: missing required field \"registries\"",
            "2:5: rules[0]: missing required field \"secrets\"",
        ],
    ),
    (
        "rules:\n  - name: a\n    registries: [x.io]\n    secret: [s]\n",
        &[
            "2:5: rules[0]: missing required field \"secrets\"",
            "4:5: rules[0]: unknown field \"secret\" (did you mean \"secrets\"?); known fields: name, registries, repositories, secrets, namespaces",
        ],
    ),
    (
        "rules:\n- {name: [a], registries: harbor.io, secrets: [s], namespaces: [x]}\n",
        &[
            "2:10: rules[0].name: expected a rule name, found a list",
            "2:27: rules[0].registries: expected a list of host patterns, found \"harbor.io\" (write it as a list: [\"harbor.io\"])",
            "2:64: rules[0].namespaces: expected a mapping with include, exclude or selector, found a list",
        ],
    ),
    // --- empty lists ---
    (
        "rules:\n- name: a\n  registries: []\n  repositories: []\n  secrets: []\n  namespaces: {include: [], exclude: []}\n",
        &[
            "3:15: rules[0].registries: must not be empty; list at least one host pattern",
            "4:17: rules[0].repositories: must not be empty; list at least one repository glob",
            "5:12: rules[0].secrets: must not be empty; list at least one secret name",
            "6:25: rules[0].namespaces.include: must not be empty; list at least one namespace glob",
            "6:38: rules[0].namespaces.exclude: must not be empty; list at least one namespace glob",
        ],
    ),
    // --- patterns and names ---
    (
        "rules:\n- name: a\n  registries:\n  - harbor.corp.example\n  - harbor.io/team\n  - https://harbor.io\n  - \"\"\n  - a..b\n  - x.io:99999\n  - x.io:http\n  - ~\n  secrets: [s]\n",
        &[
            "5:5: rules[0].registries[1]: invalid host pattern \"harbor.io/team\": a registry pattern is a host[:port]; put repository paths in \"repositories\"",
            "6:5: rules[0].registries[2]: invalid host pattern \"https://harbor.io\": remove the scheme \"https://\"; a registry pattern is a host[:port]",
            "7:5: rules[0].registries[3]: invalid host pattern \"\": must not be empty",
            "8:5: rules[0].registries[4]: invalid host pattern \"a..b\": has an empty label (check for a leading, trailing or doubled '.')",
            "9:5: rules[0].registries[5]: invalid host pattern \"x.io:99999\": port 99999 is out of range 1-65535",
            "10:5: rules[0].registries[6]: invalid host pattern \"x.io:http\": port \"http\" is not a number",
            "11:5: rules[0].registries[7]: expected a host pattern, found null",
        ],
    ),
    (
        "rules:\n- name: Corp_Harbor\n  registries: [x.io]\n  repositories: [/team, Team/x, a//b, \"a/b**\"]\n  secrets: [Bad_Secret, \"\", null, ok]\n",
        &[
            "2:9: rules[0].name: invalid rule name \"Corp_Harbor\": uppercase letter 'C' is not allowed; names are lowercase",
            "4:18: rules[0].repositories[0]: invalid repository glob \"/team\": must not start or end with '/'",
            "4:25: rules[0].repositories[1]: invalid repository glob \"Team/x\": uppercase letter 'T' is not allowed; repository paths are lowercase",
            "4:33: rules[0].repositories[2]: invalid repository glob \"a//b\": has an empty segment ('//')",
            "4:39: rules[0].repositories[3]: invalid repository glob \"a/b**\": '**' must be a whole segment, as in \"team-a/**\"",
            "5:13: rules[0].secrets[0]: invalid secret name \"Bad_Secret\": uppercase letter 'B' is not allowed; names are lowercase",
            "5:25: rules[0].secrets[1]: invalid secret name \"\": must not be empty",
            "5:29: rules[0].secrets[2]: expected a secret name, found null",
        ],
    ),
    (
        "rules:\n- name: a\n  registries: [x.io]\n  secrets: [s]\n  namespaces:\n    include: [Prod, a.b]\n    exclude: prod\n",
        &[
            "6:15: rules[0].namespaces.include[0]: invalid namespace glob \"Prod\": uppercase letter 'P' is not allowed; namespace names are lowercase",
            "6:21: rules[0].namespaces.include[1]: invalid namespace glob \"a.b\": character '.' is not allowed; use lowercase letters, digits, '-' and '*'",
            "7:14: rules[0].namespaces.exclude: expected a list of namespace globs, found \"prod\" (write it as a list: [\"prod\"])",
        ],
    ),
    (
        "rules:\n- name: a\n  registries: [x.io]\n  secrets: [s]\n  namespaces:\n",
        &[
            "5:3: rules[0].namespaces: expected a mapping with include, exclude or selector, found null",
        ],
    ),
    // --- duplicates ---
    (
        "rules:\n  - name: a\n    registries: [x.io]\n    secrets: [s]\n  - name: b\n    registries: [y.io]\n    secrets: [s]\n  - name: a\n    registries: [z.io]\n    secrets: [s]\n",
        &["8:11: rules[2].name: duplicate rule name \"a\" (first defined at line 2)"],
    ),
    (
        "rules: []\nrules: []\n",
        &["2:1: duplicate key \"rules\" (first at line 1)"],
    ),
    (
        "rules:\n- name: a\n  registries: [x.io]\n  secrets: [s]\n  name: b\n",
        &["5:3: rules[0]: duplicate key \"name\" (first at line 2)"],
    ),
    // --- YAML features that are refused ---
    (
        "rules:\n  - name: a\n    registries: &r [x.io]\n    secrets: *r\n",
        &[
            "3:20: rules[0].registries: YAML anchors are not supported; write the value out",
            "4:14: rules[0].secrets: YAML aliases are not supported; write the value out",
        ],
    ),
    (
        "rules:\n- name: !!int 5\n  registries: [x.io]\n  secrets: [!custom s]\n",
        &[
            "2:15: rules[0].name: YAML tag \"!!int\" is not supported",
            "4:21: rules[0].secrets[0]: YAML tag \"!custom\" is not supported",
        ],
    ),
    (
        "? [a]\n: b\nrules: []\n",
        &["1:3: mapping keys must be strings"],
    ),
    // --- selectors ---
    (
        concat!(
            "rules:\n- name: a\n  registries: [x.io]\n  secrets: [s]\n  namespaces:\n    selector:\n",
            "      matchLabels: {\"Bad Key\": x, tier: ~, ok: \"in valid\", empty: \"\"}\n",
            "      matchExpressions:\n",
            "      - {key: tier, operator: in, values: [a]}\n",
            "      - {key: t, operator: In}\n",
            "      - {key: t, operator: NotIn, values: []}\n",
            "      - {key: t, operator: Exists, values: [a]}\n",
            "      - {operator: DoesNotExist}\n",
            "      - {key: -t, operator: Exists, value: [a]}\n",
            "      matchLabel: {}\n",
        ),
        &[
            "7:21: rules[0].namespaces.selector.matchLabels: invalid label key \"Bad Key\": character ' ' is not allowed; use letters, digits, '-', '_' and '.'",
            "7:41: rules[0].namespaces.selector.matchLabels.tier: expected a label value (write \"\" for an empty one), found null",
            "7:48: rules[0].namespaces.selector.matchLabels.ok: invalid label value \"in valid\": character ' ' is not allowed; use letters, digits, '-', '_' and '.'",
            "9:31: rules[0].namespaces.selector.matchExpressions[0].operator: invalid operator \"in\"; expected one of In, NotIn, Exists, DoesNotExist",
            "10:9: rules[0].namespaces.selector.matchExpressions[1]: operator In requires \"values\" with at least one value",
            "11:43: rules[0].namespaces.selector.matchExpressions[2].values: operator NotIn requires at least one value",
            "12:44: rules[0].namespaces.selector.matchExpressions[3].values: operator Exists takes no values",
            "13:9: rules[0].namespaces.selector.matchExpressions[4]: missing required field \"key\"",
            "14:15: rules[0].namespaces.selector.matchExpressions[5].key: invalid label key \"-t\": must start and end with a letter or digit",
            "14:37: rules[0].namespaces.selector.matchExpressions[5]: unknown field \"value\" (did you mean \"values\"?); known fields: key, operator, values",
            "15:7: rules[0].namespaces.selector: unknown field \"matchLabel\" (did you mean \"matchLabels\"?); known fields: matchLabels, matchExpressions",
        ],
    ),
    (
        "rules:\n- name: a\n  registries: [x.io]\n  secrets: [s]\n  namespaces: {selector: {matchExpressions: [{key: t, operator: In, values: prod}]}}\n",
        &[
            "5:77: rules[0].namespaces.selector.matchExpressions[0].values: expected a list of label values, found \"prod\"",
        ],
    ),
    (
        "rules:\n- name: a\n  registries: [x.io]\n  secrets: [s]\n  namespaces: {selector: {matchLabels: [a], matchExpressions: {}}}\n",
        &[
            "5:40: rules[0].namespaces.selector.matchLabels: expected a mapping of label keys to values, found a list",
            "5:63: rules[0].namespaces.selector.matchExpressions: expected a list of label selector requirements, found a mapping",
        ],
    ),
];

#[test]
fn every_error_kind_is_reported_with_its_location() {
    let mut failures = Vec::new();
    for (i, (text, want)) in CASES.iter().enumerate() {
        let got = errors_of(text);
        if got != *want {
            failures.push(format!(
                "case {i}:\n--- text ---\n{text}--- want ---\n{}\n--- got ---\n{}\n",
                want.join("\n"),
                got.join("\n")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn several_errors_in_one_document_are_all_reported_in_order() {
    let text = "rules:\n- name: A\n  registries: [\"*.corp.example:5000\", harbor.io/x]\n  secrets: [s]\n- name: b\n  registries: []\n  secrets: [Bad]\n  extra: 1\n";
    let got = errors_of(text);
    assert_eq!(got.len(), 5, "{got:#?}");
    assert!(got[0].starts_with("2:9: rules[0].name: invalid rule name \"A\""));
    assert!(
        got[1].starts_with("3:39: rules[0].registries[1]: invalid host pattern \"harbor.io/x\"")
    );
    assert!(got[2].starts_with("6:15: rules[1].registries: must not be empty"));
    assert!(got[3].starts_with("7:13: rules[1].secrets[0]: invalid secret name \"Bad\""));
    assert!(got[4].starts_with("8:3: rules[1]: unknown field \"extra\""));
}

#[test]
fn oversized_text_is_rejected_before_parsing() {
    let text = format!("# {}\nrules: []\n", "x".repeat(MAX_POLICY_BYTES));
    assert_eq!(
        errors_of(&text),
        [format!(
            "1:1: policy is {} bytes; the limit is 1048576 bytes (1 MiB)",
            text.len()
        )]
    );
}

#[test]
fn deep_nesting_is_refused_without_recursion() {
    let text = format!("rules: {}", "[".repeat(40));
    let got = errors_of(&text);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("1:39: rules[0][0]"), "{}", got[0]);
    assert!(
        got[0].ends_with("nesting is deeper than 32 levels"),
        "{}",
        got[0]
    );
    // Far deeper: whichever limit trips first, one error and no stack overflow.
    for open in ["[", "{a: ", "- "] {
        let text = format!("rules: {}", open.repeat(100_000));
        assert_eq!(errors_of(&text).len(), 1);
    }
}

#[test]
fn errors_have_positive_positions_and_display_one_per_line() {
    let err = parse("rules:\n- name: A\n  registries: []\n  secrets: []\n").unwrap_err();
    assert_eq!(err.0.len(), 3);
    assert!(err.0.iter().all(|e| e.line >= 1 && e.column >= 1));
    assert_eq!(err.to_string().lines().count(), 3);
    assert_eq!(err.0[0].path, "rules[0].name");
    assert_eq!((err.0[0].line, err.0[0].column), (2, 9));
}

#[test]
fn an_alias_bomb_is_refused_without_expanding_it() {
    // Nine anchors, each a list of nine aliases of the one before: expanded,
    // 9^9 strings. The loader never expands aliases: every anchor and
    // alias is an error at its place, and nothing is copied.
    let mut text = format!("a0: &a0 [{}]\n", ["x"; 9].join(", "));
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    text.push_str("rules: *a8\n");
    let got = errors_of(&text);
    let anchors = got
        .iter()
        .filter(|e| e.contains("YAML anchors are not supported"))
        .count();
    let aliases = got
        .iter()
        .filter(|e| e.contains("YAML aliases are not supported"))
        .count();
    assert_eq!((anchors, aliases), (9, 8 * 9 + 1), "{got:#?}");
    assert!(
        got.iter().any(|e| e.starts_with("1:9: a0: YAML anchors")),
        "{got:#?}"
    );
    let err = crate::core::policy::CompiledPolicy::from_text(&text).expect_err("bomb");
    assert!(err.0.len() >= 82);
}
