//! The identity and permissions `audit` runs with in the shipped example:
//! the ServiceAccount and ClusterRoleBinding of `manifests/audit/example`
//! and the ClusterRole of `manifests/audit`, for [`FakeApi::start_with`].

use std::path::PathBuf;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde_json::Value;

use super::Manifests;
use super::rbac::Rbac;

fn read_json(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    pull_secret_injector::core::yaml::to_json(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl Manifests {
    /// The example audit CronJob's ServiceAccount with the rights the
    /// shipped ClusterRole grants through the shipped binding.
    pub fn audit() -> Manifests {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/audit");
        let kustomization = read_json(&dir.join("example/kustomization.yaml"));
        let namespace = kustomization["namespace"]
            .as_str()
            .expect("namespace")
            .to_owned();
        let role: ClusterRole =
            serde_json::from_value(read_json(&dir.join("clusterrole.yaml"))).expect("ClusterRole");
        let binding: ClusterRoleBinding =
            serde_json::from_value(read_json(&dir.join("example/clusterrolebinding.yaml")))
                .expect("ClusterRoleBinding");
        let sa = read_json(&dir.join("example/serviceaccount.yaml"));
        let service_account = sa["metadata"]["name"].as_str().expect("SA name").to_owned();
        let cronjob: CronJob =
            serde_json::from_value(read_json(&dir.join("example/cronjob.yaml"))).expect("CronJob");
        let args: Vec<String> = cronjob
            .spec
            .and_then(|s| s.job_template.spec)
            .map(|j| j.template)
            .and_then(|t| t.spec)
            .map(|p| {
                p.containers
                    .into_iter()
                    .flat_map(|c| c.args.unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        let policy = args
            .iter()
            .position(|a| a == "--policy-configmap")
            .and_then(|i| args.get(i + 1))
            .expect("the CronJob passes --policy-configmap");
        let (policy_ns, policy_configmap) = policy.split_once('/').expect("NAMESPACE/NAME");
        assert_eq!(policy_ns, namespace);

        let user = format!("system:serviceaccount:{namespace}:{service_account}");
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert_eq!(
            binding.role_ref.name,
            role.metadata.name.clone().expect("role name")
        );
        assert!(
            binding
                .subjects
                .iter()
                .flatten()
                .any(|s| s.kind == "ServiceAccount"
                    && s.name == service_account
                    && s.namespace.as_deref() == Some(namespace.as_str())),
            "the binding names the example's ServiceAccount"
        );
        Manifests {
            namespace: namespace.clone(),
            service_account,
            policy_configmap: policy_configmap.to_owned(),
            rbac: Rbac {
                user,
                groups: vec![
                    "system:serviceaccounts".to_owned(),
                    format!("system:serviceaccounts:{namespace}"),
                    "system:authenticated".to_owned(),
                ],
                namespaced: Vec::new(),
                cluster: role.rules.unwrap_or_default(),
            },
        }
    }
}
