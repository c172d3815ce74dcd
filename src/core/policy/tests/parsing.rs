//! Valid documents: YAML block and flow styles, comments, JSON (compact and
//! tab-indented), scalars that look like numbers or booleans.

use std::collections::BTreeMap;

use super::{compiled, matching};
use crate::core::policy::{
    LabelSelector, LabelSelectorRequirement, NamespaceFilter, Policy, Rule, SelectorOperator, parse,
};

/// The example of the format documentation, comments and all.
const EXAMPLE: &str = r#"
rules:
  - name: corp-harbor                 # required, unique, DNS-label
    registries:                       # required, >=1 host pattern
      - harbor.corp.example           # exact host, case-insensitive
      - "*.corp.example:5000"         # '*' = exactly one DNS label
    repositories: ["team-a/**"]       # optional path globs
    secrets: [harbor-pull]            # required
    namespaces:                       # optional; default: every namespace
      include: ["team-a-*", "prod"]   # name globs
      exclude: ["team-a-sandbox"]
      selector:                       # Kubernetes LabelSelector
        matchLabels: {registry-access: harbor}
        matchExpressions: [{key: tier, operator: In, values: [prod]}]
  - name: dockerhub
    registries: [docker.io]           # matches nginx, library/nginx, index.docker.io/...
    secrets: [dockerhub-creds]
"#;

fn expected_example() -> Vec<Rule> {
    vec![
        Rule {
            name: "corp-harbor".into(),
            registries: vec!["harbor.corp.example".into(), "*.corp.example:5000".into()],
            repositories: vec!["team-a/**".into()],
            secrets: vec!["harbor-pull".into()],
            namespaces: Some(NamespaceFilter {
                include: Some(vec!["team-a-*".into(), "prod".into()]),
                exclude: vec!["team-a-sandbox".into()],
                selector: Some(LabelSelector {
                    match_labels: BTreeMap::from([("registry-access".into(), "harbor".into())]),
                    match_expressions: vec![LabelSelectorRequirement {
                        key: "tier".into(),
                        operator: SelectorOperator::In,
                        values: vec!["prod".into()],
                    }],
                }),
            }),
        },
        Rule {
            name: "dockerhub".into(),
            registries: vec!["docker.io".into()],
            repositories: vec![],
            secrets: vec!["dockerhub-creds".into()],
            namespaces: None,
        },
    ]
}

fn rules_of(text: &str) -> Vec<Rule> {
    parse(text)
        .map(Policy::into_rules)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn documented_example_parses_with_comments() {
    assert_eq!(rules_of(EXAMPLE), expected_example());
}

#[test]
fn flow_style_and_block_style_agree() {
    let flow = r#"{rules: [
      {name: corp-harbor, registries: [harbor.corp.example, "*.corp.example:5000"],
       repositories: [team-a/**], secrets: [harbor-pull],
       namespaces: {include: [team-a-*, prod], exclude: [team-a-sandbox],
         selector: {matchLabels: {registry-access: harbor},
                    matchExpressions: [{key: tier, operator: In, values: [prod]}]}}},
      {name: dockerhub, registries: [docker.io], secrets: [dockerhub-creds]}]}"#;
    assert_eq!(rules_of(flow), expected_example());
    let block_lists = "rules:\n- name: corp-harbor\n  registries:\n  - harbor.corp.example\n  - '*.corp.example:5000'\n  repositories:\n  - team-a/**\n  secrets:\n  - harbor-pull\n  namespaces:\n    include:\n    - team-a-*\n    - prod\n    exclude:\n    - team-a-sandbox\n    selector:\n      matchLabels:\n        registry-access: harbor\n      matchExpressions:\n      - key: tier\n        operator: In\n        values:\n        - prod\n- name: dockerhub\n  registries:\n  - docker.io\n  secrets:\n  - dockerhub-creds\n";
    assert_eq!(rules_of(block_lists), expected_example());
}

#[test]
fn compact_json_parses() {
    let json = r#"{"rules":[{"name":"corp-harbor","registries":["harbor.corp.example","*.corp.example:5000"],"repositories":["team-a/**"],"secrets":["harbor-pull"],"namespaces":{"include":["team-a-*","prod"],"exclude":["team-a-sandbox"],"selector":{"matchLabels":{"registry-access":"harbor"},"matchExpressions":[{"key":"tier","operator":"In","values":["prod"]}]}}},{"name":"dockerhub","registries":["docker.io"],"secrets":["dockerhub-creds"]}]}"#;
    assert_eq!(rules_of(json), expected_example());
}

#[test]
fn tab_indented_pretty_json_parses_and_reports_columns() {
    let json = "{\n\t\"rules\": [\n\t\t{\n\t\t\t\"name\": \"corp-harbor\",\n\t\t\t\"registries\": [\n\t\t\t\t\"harbor.corp.example\",\n\t\t\t\t\"*.corp.example:5000\"\n\t\t\t],\n\t\t\t\"repositories\": [\"team-a/**\"],\n\t\t\t\"secrets\": [\"harbor-pull\"],\n\t\t\t\"namespaces\": {\n\t\t\t\t\"include\": [\"team-a-*\", \"prod\"],\n\t\t\t\t\"exclude\": [\"team-a-sandbox\"],\n\t\t\t\t\"selector\": {\n\t\t\t\t\t\"matchLabels\": {\"registry-access\": \"harbor\"},\n\t\t\t\t\t\"matchExpressions\": [{\"key\": \"tier\", \"operator\": \"In\", \"values\": [\"prod\"]}]\n\t\t\t\t}\n\t\t\t}\n\t\t},\n\t\t{\n\t\t\t\"name\": \"dockerhub\",\n\t\t\t\"registries\": [\"docker.io\"],\n\t\t\t\"secrets\": [\"dockerhub-creds\"]\n\t\t}\n\t]\n}\n";
    assert_eq!(rules_of(json), expected_example());
    let bad = json.replace("\"harbor.corp.example\"", "\"harbor.corp.example/x\"");
    let err = parse(&bad).unwrap_err();
    assert_eq!(err.0.len(), 1);
    // A tab counts as one column.
    assert_eq!((err.0[0].line, err.0[0].column), (6, 5));
    assert_eq!(err.0[0].path, "rules[0].registries[0]");
}

#[test]
fn empty_rules_list_is_a_valid_empty_policy() {
    for text in [
        "rules: []",
        "{\"rules\": []}",
        "rules: []\n# nothing yet\n",
        "---\nrules: []\n...\n",
    ] {
        assert!(rules_of(text).is_empty(), "{text}");
        assert!(compiled(text).rules().is_empty());
    }
}

#[test]
fn numbers_and_booleans_in_string_positions_are_taken_as_text() {
    let rules = rules_of(
        "rules:\n- name: 123\n  registries: [x.io]\n  secrets: [123, true, 0x1f, 1e3, !!str null]\n  namespaces: {selector: {matchLabels: {enabled: true, n: 1}}}\n",
    );
    assert_eq!(rules[0].name, "123");
    assert_eq!(rules[0].secrets, ["123", "true", "0x1f", "1e3", "null"]);
    let labels = &rules[0]
        .namespaces
        .as_ref()
        .unwrap()
        .selector
        .as_ref()
        .unwrap()
        .match_labels;
    assert_eq!(labels.get("enabled").map(String::as_str), Some("true"));
    assert_eq!(labels.get("n").map(String::as_str), Some("1"));
}

#[test]
fn byte_order_mark_and_crlf_are_accepted() {
    let text = "\u{feff}rules:\r\n- name: a\r\n  registries: [x.io]\r\n  secrets: [s]\r\n";
    assert_eq!(rules_of(text)[0].secrets, ["s"]);
}

#[test]
fn quoted_scalars_of_every_style_are_strings() {
    let text = "rules:\n- name: 'a'\n  registries: [\"*.corp.example:5000\", '*.b.example']\n  secrets:\n  - \"s\\u0031\"\n  - |-\n    s2\n";
    let rules = rules_of(text);
    assert_eq!(rules[0].registries, ["*.corp.example:5000", "*.b.example"]);
    assert_eq!(rules[0].secrets, ["s1", "s2"]);
}

#[test]
fn empty_selector_and_namespace_filter_mean_every_namespace() {
    let p = compiled(
        "rules:\n- name: a\n  registries: [x.io]\n  secrets: [s]\n  namespaces: {selector: {}}\n- name: b\n  registries: [x.io]\n  secrets: [s]\n  namespaces: {}\n",
    );
    assert!(!p.uses_selectors());
    assert!(p.rules().iter().all(|r| !r.has_selector()));
}

#[test]
fn compiled_rules_keep_order_names_and_deduplicated_secrets() {
    let p = compiled(
        "rules:\n- name: b\n  registries: [x.io]\n  secrets: [s2, s1, s2]\n- name: a\n  registries: [x.io]\n  secrets: [s1]\n",
    );
    let names: Vec<&str> = p.rules().iter().map(|r| r.name()).collect();
    assert_eq!(names, ["b", "a"]);
    assert_eq!(p.rules()[0].secrets(), ["s2", "s1"]);
    assert_eq!(matching(&p, "x.io", "app"), [0, 1]);
}

#[test]
fn uses_selectors_reflects_rules() {
    assert!(compiled(EXAMPLE).uses_selectors());
    assert!(compiled(EXAMPLE).rules()[0].has_selector());
    assert!(!compiled(EXAMPLE).rules()[1].has_selector());
    assert!(!compiled("rules: []").uses_selectors());
}
