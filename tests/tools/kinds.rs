//! What each kind of object the manifests and the chart hold must look
//! like: Kubernetes kinds round-trip through their k8s-openapi types (a
//! misspelled field, which the types would silently drop, fails); the
//! cert-manager and Prometheus Operator kinds, which have no Rust types here,
//! are checked field by field against their CRDs' schemas.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

pub fn kind_of(value: &Value) -> &str {
    str_at(value, "/kind").unwrap_or("")
}

pub fn name_of(value: &Value) -> &str {
    str_at(value, "/metadata/name").unwrap_or("")
}

pub fn namespace_of(value: &Value) -> Option<&str> {
    str_at(value, "/metadata/namespace")
}

pub fn describe(value: &Value) -> String {
    match namespace_of(value) {
        Some(ns) => format!("{} {ns}/{}", kind_of(value), name_of(value)),
        None => format!("{} {}", kind_of(value), name_of(value)),
    }
}

/// Where two JSON values differ, as JSON pointers.
pub fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                let here = format!("{at}/{key}");
                match (x.get(key), y.get(key)) {
                    (Some(p), Some(q)) => differences(p, q, &here, out),
                    (Some(_), None) => out.push(format!("{here} (not a field of the type)")),
                    (None, Some(_)) => out.push(format!("{here} (added by the type)")),
                    (None, None) => unreachable!(),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(p, q, &format!("{at}/{i}"), out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{at}: {a} became {b}")),
    }
}

/// Parses `value` as `T` and checks that nothing was lost on the way:
/// k8s-openapi ignores unknown fields, so a misspelled one shows up here.
pub fn typed<T: DeserializeOwned + Serialize>(value: &Value, origin: &str) -> T {
    let object: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{origin}: not a valid {}: {e}", std::any::type_name::<T>()));
    let back = serde_json::to_value(&object).unwrap();
    let mut diffs = Vec::new();
    differences(value, &back, "", &mut diffs);
    assert!(
        diffs.is_empty(),
        "{origin}: does not round-trip through {} (misspelled or misplaced fields?):\n  {}",
        std::any::type_name::<T>(),
        diffs.join("\n  ")
    );
    object
}

pub fn parses<T: DeserializeOwned + Serialize>(value: &Value, origin: &str) {
    typed::<T>(value, origin);
}

/// Checks one document for what its `kind` claims.
pub fn check_document(value: &Value, origin: &str) {
    if let Value::Array(_) = value {
        check_json_patch(value, origin);
        return;
    }
    let api_version = str_at(value, "/apiVersion").unwrap_or("");
    match (api_version, kind_of(value)) {
        ("v1", "Namespace") => parses::<Namespace>(value, origin),
        ("v1", "ServiceAccount") => parses::<ServiceAccount>(value, origin),
        ("v1", "Service") => parses::<Service>(value, origin),
        ("v1", "ConfigMap") => parses::<ConfigMap>(value, origin),
        ("v1", "Secret") => parses::<Secret>(value, origin),
        ("apps/v1", "Deployment") => parses::<Deployment>(value, origin),
        ("batch/v1", "CronJob") => parses::<CronJob>(value, origin),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => parses::<ClusterRole>(value, origin),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            parses::<ClusterRoleBinding>(value, origin)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => parses::<Role>(value, origin),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => parses::<RoleBinding>(value, origin),
        ("policy/v1", "PodDisruptionBudget") => parses::<PodDisruptionBudget>(value, origin),
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
            parses::<MutatingWebhookConfiguration>(value, origin)
        }
        ("cert-manager.io/v1", "Issuer") => check_issuer(value, origin),
        ("cert-manager.io/v1", "Certificate") => check_certificate(value, origin),
        ("monitoring.coreos.com/v1", "ServiceMonitor") => check_service_monitor(value, origin),
        ("monitoring.coreos.com/v1", "PrometheusRule") => check_prometheus_rule(value, origin),
        ("kustomize.config.k8s.io/v1beta1", "Kustomization")
        | ("kustomize.config.k8s.io/v1alpha1", "Component") => check_kustomization(value, origin),
        (api_version, kind) => panic!(
            "{origin}: unexpected kind {kind:?} (apiVersion {api_version:?}); teach tests/tools/kinds.rs about it"
        ),
    }
}

pub fn check_json_patch(value: &Value, origin: &str) {
    let patch: json_patch::Patch = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{origin}: not a JSON patch: {e}"));
    assert!(!patch.0.is_empty(), "{origin}: empty JSON patch");
}

pub fn check_issuer(value: &Value, origin: &str) {
    assert!(
        !name_of(value).is_empty(),
        "{origin}: Issuer without a name"
    );
    let spec = value["spec"].as_object().expect("Issuer spec");
    let kinds: Vec<&String> = spec.keys().collect();
    assert!(
        kinds == ["selfSigned"] || kinds == ["ca"],
        "{origin}: expected a selfSigned or a ca Issuer, got {kinds:?}"
    );
    if let Some(ca) = spec.get("ca") {
        assert!(
            str_at(ca, "/secretName").is_some_and(|s| !s.is_empty()),
            "{origin}: ca Issuer without secretName"
        );
    }
}

/// Go duration (`2160h`, `1h30m`, `90s`).
pub fn go_duration(text: &str) -> Duration {
    let mut total = 0.0;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    assert!(!text.is_empty(), "empty duration");
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                0.001
            }
            ('h', _) => 3600.0,
            ('m', _) => 60.0,
            ('s', _) => 1.0,
            _ => panic!("bad duration {text:?}"),
        };
        total += number
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad duration {text:?}"))
            * unit;
        number.clear();
    }
    assert!(number.is_empty(), "duration {text:?} lacks a unit");
    Duration::from_secs_f64(total)
}

pub fn check_certificate(value: &Value, origin: &str) {
    let spec = &value["spec"];
    assert!(
        str_at(spec, "/secretName").is_some_and(|s| !s.is_empty()),
        "{origin}: Certificate without secretName"
    );
    assert!(
        str_at(spec, "/issuerRef/name").is_some_and(|s| !s.is_empty()),
        "{origin}: Certificate without issuerRef.name"
    );
    assert_eq!(
        str_at(spec, "/issuerRef/kind"),
        Some("Issuer"),
        "{origin}: issuerRef.kind"
    );
    assert_eq!(
        str_at(spec, "/privateKey/algorithm"),
        Some("ECDSA"),
        "{origin}: ECDSA key"
    );
    assert_eq!(
        spec.pointer("/privateKey/size").and_then(Value::as_i64),
        Some(256),
        "{origin}: P-256 key"
    );
    let duration = go_duration(str_at(spec, "/duration").expect("duration"));
    let renew = go_duration(str_at(spec, "/renewBefore").expect("renewBefore"));
    assert!(
        renew < duration && renew >= duration / 10,
        "{origin}: renewBefore {renew:?} should be a good part of duration {duration:?}"
    );
}

/// The fields of a Kustomization this repository uses.
pub fn check_kustomization(value: &Value, origin: &str) {
    let known = [
        "apiVersion",
        "kind",
        "namespace",
        "resources",
        "components",
        "patches",
        "configMapGenerator",
        "images",
    ];
    for key in value.as_object().expect("kustomization").keys() {
        assert!(
            known.contains(&key.as_str()),
            "{origin}: field {key:?} is not one the tests understand"
        );
    }
}

/// The keys of `value` (an object) are among `known`.
fn known_fields(value: &Value, known: &[&str], origin: &str) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{origin}: expected an object, got {value}"));
    for key in object.keys() {
        assert!(
            known.contains(&key.as_str()),
            "{origin}: unknown field {key:?} (known: {known:?})"
        );
    }
}

fn check_metadata(value: &Value, origin: &str) {
    known_fields(value, &["apiVersion", "kind", "metadata", "spec"], origin);
    let metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
        typed(&value["metadata"], &format!("{origin}: metadata"));
    assert!(
        metadata.name.is_some_and(|n| !n.is_empty()),
        "{origin}: no name"
    );
}

/// monitoring.coreos.com/v1 ServiceMonitor: the fields this project uses.
pub fn check_service_monitor(value: &Value, origin: &str) {
    check_metadata(value, origin);
    let spec = &value["spec"];
    known_fields(
        spec,
        &["selector", "namespaceSelector", "endpoints", "jobLabel"],
        origin,
    );
    let selector: LabelSelector = typed(&spec["selector"], &format!("{origin}: selector"));
    assert!(
        selector.match_labels.is_some() || selector.match_expressions.is_some(),
        "{origin}: an empty selector would scrape every Service"
    );
    let endpoints = spec["endpoints"].as_array().expect("endpoints");
    assert!(!endpoints.is_empty(), "{origin}: no endpoints");
    for endpoint in endpoints {
        known_fields(
            endpoint,
            &["port", "path", "scheme", "interval", "scrapeTimeout"],
            origin,
        );
        assert!(
            endpoint["port"].is_string(),
            "{origin}: endpoint port by name"
        );
        if let Some(interval) = endpoint["interval"].as_str() {
            go_duration(interval);
        }
        if let Some(scheme) = endpoint["scheme"].as_str() {
            assert!(
                ["http", "https"].contains(&scheme),
                "{origin}: scheme {scheme}"
            );
        }
    }
}

/// monitoring.coreos.com/v1 PrometheusRule: groups of alerting rules, each
/// with an expression, a duration, a severity, a summary and a description.
pub fn check_prometheus_rule(value: &Value, origin: &str) {
    check_metadata(value, origin);
    let spec = &value["spec"];
    known_fields(spec, &["groups"], origin);
    let mut names = BTreeSet::new();
    for group in spec["groups"].as_array().expect("groups") {
        known_fields(group, &["name", "interval", "rules"], origin);
        let group_name = group["name"].as_str().expect("group name");
        assert!(
            names.insert(group_name.to_owned()),
            "{origin}: group {group_name} twice"
        );
        let rules = group["rules"].as_array().expect("rules");
        assert!(!rules.is_empty(), "{origin}: {group_name}: no rules");
        for rule in rules {
            known_fields(
                rule,
                &["alert", "record", "expr", "for", "labels", "annotations"],
                origin,
            );
            let alert = rule["alert"].as_str().expect("alerting rules only");
            let at = format!("{origin}: {alert}");
            assert!(
                alert.chars().all(|c| c.is_ascii_alphanumeric()),
                "{at}: alert name"
            );
            assert!(
                rule["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "{at}: expr"
            );
            go_duration(rule["for"].as_str().unwrap_or_else(|| panic!("{at}: for")));
            assert!(
                matches!(
                    rule.pointer("/labels/severity").and_then(Value::as_str),
                    Some("warning" | "critical")
                ),
                "{at}: severity warning or critical"
            );
            for key in ["summary", "description"] {
                assert!(
                    rule["annotations"][key]
                        .as_str()
                        .is_some_and(|t| !t.trim().is_empty()),
                    "{at}: annotation {key}"
                );
            }
        }
    }
}
