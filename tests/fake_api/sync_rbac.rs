//! The `sync` controller's identity and permissions for the fake API.
//!
//! They come from the shipped kustomize component `manifests/components/sync`
//! when it exists; until it lands, from the copy below of the RBAC the
//! component grants (namespaces list/watch; Secrets cluster-wide; Events
//! create/patch; in the install namespace the policy ConfigMap and the
//! Lease).

use std::path::PathBuf;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use serde_json::Value;

use super::rbac::{Manifests, Rbac};

const NAMESPACE: &str = "pull-secret-injector";
const SERVICE_ACCOUNT: &str = "pull-secret-injector-sync";
const POLICY_CONFIGMAP: &str = "pull-secret-injector-policy";

const CLUSTER_ROLE: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: pull-secret-injector-sync}
rules:
  - apiGroups: [""]
    resources: [namespaces]
    verbs: [list, watch]
  - apiGroups: [""]
    resources: [secrets]
    verbs: [get, list, watch, create, update, patch, delete]
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
  - apiGroups: [""]
    resources: [events]
    verbs: [create, patch]
"#;

const ROLE: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pull-secret-injector-sync}
rules:
  - apiGroups: [""]
    resources: [configmaps]
    resourceNames: [pull-secret-injector-policy]
    verbs: [get, list, watch]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [create]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    resourceNames: [pull-secret-injector-sync]
    verbs: [get, update]
"#;

fn component_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/components/sync")
}

fn parse(text: &str) -> Value {
    pull_secret_injector::core::yaml::to_json(text).expect("RBAC YAML")
}

fn rules_of<T: serde::de::DeserializeOwned>(
    text: &str,
    rules: impl Fn(T) -> Option<Vec<PolicyRule>>,
) -> Vec<PolicyRule> {
    rules(serde_json::from_value(parse(text)).expect("RBAC object")).unwrap_or_default()
}

impl Manifests {
    /// The sync controller's ServiceAccount and permissions.
    pub fn sync() -> Manifests {
        let dir = component_dir();
        let read = |file: &str, fallback: &str| -> String {
            std::fs::read_to_string(dir.join(file)).unwrap_or_else(|_| fallback.to_owned())
        };
        let cluster = rules_of(&read("clusterrole.yaml", CLUSTER_ROLE), |r: ClusterRole| {
            r.rules
        });
        let namespaced = rules_of(&read("role.yaml", ROLE), |r: Role| r.rules);
        let user = format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}");
        Manifests {
            namespace: NAMESPACE.to_owned(),
            service_account: SERVICE_ACCOUNT.to_owned(),
            policy_configmap: POLICY_CONFIGMAP.to_owned(),
            rbac: Rbac {
                user,
                groups: vec![
                    "system:serviceaccounts".to_owned(),
                    format!("system:serviceaccounts:{NAMESPACE}"),
                    "system:authenticated".to_owned(),
                ],
                namespaced: vec![(NAMESPACE.to_owned(), namespaced)],
                cluster,
            },
        }
    }
}
