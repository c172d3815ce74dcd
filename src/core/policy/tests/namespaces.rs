//! Namespace include/exclude globs and label selectors, with known and
//! unknown labels.

use std::collections::BTreeMap;

use super::compiled;
use crate::core::policy::{NamespaceFacts, NamespaceMatch};

const POLICY: &str = r#"
rules:
- {name: anywhere, registries: [x.io], secrets: [s]}
- {name: include, registries: [x.io], secrets: [s], namespaces: {include: [team-a-*, prod]}}
- {name: exclude, registries: [x.io], secrets: [s], namespaces: {exclude: [team-a-sandbox]}}
- name: both
  registries: [x.io]
  secrets: [s]
  namespaces: {include: [team-a-*], exclude: [team-a-sandbox]}
- name: labels
  registries: [x.io]
  secrets: [s]
  namespaces: {selector: {matchLabels: {registry-access: harbor}}}
- name: include-and-in
  registries: [x.io]
  secrets: [s]
  namespaces:
    include: [prod]
    selector: {matchExpressions: [{key: tier, operator: In, values: [prod, staging]}]}
- name: not-in
  registries: [x.io]
  secrets: [s]
  namespaces: {selector: {matchExpressions: [{key: tier, operator: NotIn, values: [dev]}]}}
- name: exists
  registries: [x.io]
  secrets: [s]
  namespaces: {selector: {matchExpressions: [{key: tier, operator: Exists}]}}
- name: does-not-exist
  registries: [x.io]
  secrets: [s]
  namespaces: {selector: {matchExpressions: [{key: tier, operator: DoesNotExist, values: []}]}}
- name: empty-selector
  registries: [x.io]
  secrets: [s]
  namespaces: {exclude: [kube-*], selector: {}}
"#;

/// (namespace name, its labels if known, expected answer of each rule)
type Case<'a> = (
    &'a str,
    Option<&'a BTreeMap<String, String>>,
    [NamespaceMatch; 10],
);

#[test]
fn namespace_table() {
    use NamespaceMatch::{No as N, Unknown as U, Yes as Y};
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let prod = labels(&[("tier", "prod"), ("registry-access", "harbor")]);
    let dev = labels(&[("tier", "dev")]);
    let bare = labels(&[]);
    let p = compiled(POLICY);
    assert_eq!(p.rules().len(), 10);
    // Rules: anywhere, include, exclude, both, labels, include-and-in,
    //        not-in, exists, does-not-exist, empty-selector.
    let cases: &[Case<'_>] = &[
        ("prod", Some(&prod), [Y, Y, Y, N, Y, Y, Y, Y, N, Y]),
        ("prod", Some(&dev), [Y, Y, Y, N, N, N, N, Y, N, Y]),
        ("prod", Some(&bare), [Y, Y, Y, N, N, N, Y, N, Y, Y]),
        ("prod", None, [Y, Y, Y, N, U, U, U, U, U, Y]),
        ("team-a-dev", Some(&prod), [Y, Y, Y, Y, Y, N, Y, Y, N, Y]),
        ("team-a-dev", None, [Y, Y, Y, Y, U, N, U, U, U, Y]),
        ("team-a-sandbox", None, [Y, Y, N, N, U, N, U, U, U, Y]),
        ("team-b", Some(&dev), [Y, N, Y, N, N, N, N, Y, N, Y]),
        ("kube-system", None, [Y, N, Y, N, U, N, U, U, U, N]),
    ];
    for (name, labels, want) in cases {
        let facts = NamespaceFacts {
            name,
            labels: *labels,
        };
        let got: Vec<NamespaceMatch> = p
            .rules()
            .iter()
            .map(|r| r.namespace_match(&facts))
            .collect();
        assert_eq!(got, want, "namespace {name} with labels {labels:?}");
    }
    let with_selector: Vec<bool> = p.rules().iter().map(|r| r.has_selector()).collect();
    assert_eq!(
        with_selector,
        [
            false, false, false, false, true, true, true, true, true, false
        ]
    );
    assert!(p.uses_selectors());
}
