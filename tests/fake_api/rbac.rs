//! The webhook's identity and permissions as the shipped kustomize base
//! grants them, and kube-apiserver's RBAC authorizer over them.
//!
//! Everything is read from `manifests/base/` (the kustomization's
//! `namespace` and `resources`): the ServiceAccount, the Roles and
//! ClusterRoles, and the bindings that give them to the ServiceAccount.
//! Nothing is substituted, so the tests run under the real names.

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What kube-apiserver's RequestInfo resolver makes of a resource request:
/// the attributes the authorizer decides on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'static str,
    /// The API group ("" for the core group).
    pub group: String,
    pub version: String,
    /// The resource (plural), e.g. `configmaps`.
    pub resource: String,
    pub subresource: String,
    /// "" for cluster-scoped requests. For `/api/v1/namespaces/NAME` it is
    /// NAME, as in kube-apiserver.
    pub namespace: String,
    /// The object's name: from the path, or for list and watch from a
    /// `metadata.name=NAME` field selector.
    pub name: String,
}

impl Attributes {
    /// kube-apiserver's `forbiddenMessage`, wrapped as `NewForbidden` does.
    pub fn forbidden_message(&self, user: &str) -> String {
        let resource = if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        };
        let scope = if self.namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in the namespace {:?}", self.namespace)
        };
        let qualified = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        let what = if self.name.is_empty() {
            qualified
        } else {
            format!("{qualified} {:?}", self.name)
        };
        format!(
            "{what} is forbidden: User {user:?} cannot {} resource {resource:?} in API group {:?} {scope}",
            self.verb, self.group
        )
    }
}

/// Rules granted to one user, as RBAC resolves bindings.
#[derive(Clone, Debug, Default)]
pub struct Rbac {
    pub user: String,
    pub groups: Vec<String>,
    /// Rules from RoleBindings: they apply in that namespace only.
    pub namespaced: Vec<(String, Vec<PolicyRule>)>,
    /// Rules from ClusterRoleBindings: they apply everywhere.
    pub cluster: Vec<PolicyRule>,
}

impl Rbac {
    /// Whether any rule the user is bound to allows the request.
    pub fn allows(&self, request: &Attributes) -> bool {
        if self.cluster.iter().any(|rule| rule_allows(rule, request)) {
            return true;
        }
        !request.namespace.is_empty()
            && self
                .namespaced
                .iter()
                .filter(|(namespace, _)| *namespace == request.namespace)
                .any(|(_, rules)| rules.iter().any(|rule| rule_allows(rule, request)))
    }
}

/// `RuleAllows` from kube-apiserver's RBAC authorizer
/// (plugin/pkg/auth/authorizer/rbac, pkg/apis/rbac/v1/evaluation_helpers.go).
fn rule_allows(rule: &PolicyRule, request: &Attributes) -> bool {
    let combined = if request.subresource.is_empty() {
        request.resource.clone()
    } else {
        format!("{}/{}", request.resource, request.subresource)
    };
    let verb = rule.verbs.iter().any(|v| v == "*" || v == request.verb);
    let group = rule
        .api_groups
        .iter()
        .flatten()
        .any(|g| g == "*" || *g == request.group);
    let resource = rule.resources.iter().flatten().any(|r| {
        r == "*"
            || *r == combined
            || (!request.subresource.is_empty()
                && r.len() == request.subresource.len() + 2
                && r.starts_with("*/")
                && r.ends_with(&request.subresource))
    });
    // An empty resourceNames allows every name; otherwise the request must
    // carry one of them (a list or watch without a name selector has none).
    let name = match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => names.contains(&request.name),
    };
    verb && group && resource && name
}

/// What the kustomize base ships, as far as the fake API needs it.
#[derive(Clone, Debug)]
pub struct Manifests {
    /// The kustomization's `namespace`.
    pub namespace: String,
    /// The webhook's ServiceAccount.
    pub service_account: String,
    /// The ConfigMap the Deployment's `--policy-configmap` names (in
    /// `namespace`).
    pub policy_configmap: String,
    /// The ServiceAccount's permissions.
    pub rbac: Rbac,
}

fn base_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/base")
}

fn read_json(file: &str) -> Value {
    let path = base_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    pull_secret_injector::core::yaml::to_json(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn typed<T: DeserializeOwned>(file: &str, value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn subject_is(subject: &Subject, namespace: &str, user: &str, groups: &[String]) -> bool {
    match subject.kind.as_str() {
        "ServiceAccount" => {
            let ns = subject.namespace.as_deref().unwrap_or(namespace);
            format!("system:serviceaccount:{ns}:{}", subject.name) == user
        }
        "User" => subject.name == user,
        "Group" => groups.contains(&subject.name),
        _ => false,
    }
}

impl Manifests {
    /// Reads `manifests/base/kustomization.yaml` and its resources.
    pub fn load() -> Manifests {
        let kustomization = read_json("kustomization.yaml");
        let namespace = kustomization["namespace"]
            .as_str()
            .expect("kustomization namespace")
            .to_owned();
        let generated: Vec<&str> = kustomization["configMapGenerator"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["name"].as_str())
            .collect();

        let mut service_accounts = Vec::new();
        let mut roles = Vec::new();
        let mut role_bindings = Vec::new();
        let mut cluster_roles = Vec::new();
        let mut cluster_role_bindings = Vec::new();
        let mut policy_arg = None;
        for file in kustomization["resources"]
            .as_array()
            .expect("kustomization resources")
        {
            let file = file.as_str().expect("resource file name");
            let value = read_json(file);
            // kustomize's namespace transformer puts every namespaced
            // object in the kustomization's namespace.
            match value["kind"].as_str().unwrap_or_default() {
                "ServiceAccount" => service_accounts.push(typed::<ServiceAccount>(file, &value)),
                "Role" => roles.push(typed::<Role>(file, &value)),
                "RoleBinding" => role_bindings.push(typed::<RoleBinding>(file, &value)),
                "ClusterRole" => cluster_roles.push(typed::<ClusterRole>(file, &value)),
                "ClusterRoleBinding" => {
                    cluster_role_bindings.push(typed::<ClusterRoleBinding>(file, &value));
                }
                "Deployment" => {
                    let deployment: Deployment = typed(file, &value);
                    let pod = deployment.spec.and_then(|s| s.template.spec);
                    let args: Vec<String> = pod
                        .iter()
                        .flat_map(|p| &p.containers)
                        .flat_map(|c| c.args.iter().flatten())
                        .cloned()
                        .collect();
                    policy_arg = args
                        .iter()
                        .position(|a| a == "--policy-configmap")
                        .and_then(|i| args.get(i + 1).cloned());
                }
                _ => {}
            }
        }

        let [service_account] = service_accounts.as_slice() else {
            panic!(
                "expected one ServiceAccount in the base, found {}",
                service_accounts.len()
            );
        };
        let service_account = service_account.metadata.name.clone().expect("SA name");
        let user = format!("system:serviceaccount:{namespace}:{service_account}");
        let groups = vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".to_owned(),
        ];

        let cluster_rules = |name: &str| -> Vec<PolicyRule> {
            cluster_roles
                .iter()
                .filter(|r| r.metadata.name.as_deref() == Some(name))
                .flat_map(|r| r.rules.iter().flatten().cloned())
                .collect()
        };
        let mut rbac = Rbac {
            user: user.clone(),
            groups: groups.clone(),
            ..Rbac::default()
        };
        for binding in &cluster_role_bindings {
            if binding.role_ref.kind == "ClusterRole"
                && binding
                    .subjects
                    .iter()
                    .flatten()
                    .any(|s| subject_is(s, &namespace, &user, &groups))
            {
                rbac.cluster.extend(cluster_rules(&binding.role_ref.name));
            }
        }
        for binding in &role_bindings {
            if !binding
                .subjects
                .iter()
                .flatten()
                .any(|s| subject_is(s, &namespace, &user, &groups))
            {
                continue;
            }
            // A roleRef that names no role grants nothing, as in RBAC.
            let rules: Vec<PolicyRule> = match binding.role_ref.kind.as_str() {
                "Role" => roles
                    .iter()
                    .filter(|r| r.metadata.name.as_deref() == Some(&*binding.role_ref.name))
                    .flat_map(|r| r.rules.iter().flatten().cloned())
                    .collect(),
                "ClusterRole" => cluster_rules(&binding.role_ref.name),
                _ => Vec::new(),
            };
            rbac.namespaced.push((namespace.clone(), rules));
        }

        let policy_arg = policy_arg.expect("the Deployment passes --policy-configmap");
        let (policy_namespace, policy_configmap) = policy_arg
            .split_once('/')
            .expect("--policy-configmap NAMESPACE/NAME");
        assert_eq!(
            policy_namespace, namespace,
            "--policy-configmap names the kustomization's namespace"
        );
        assert!(
            generated.contains(&policy_configmap),
            "--policy-configmap {policy_configmap} is generated by the kustomization"
        );
        Manifests {
            namespace,
            service_account,
            policy_configmap: policy_configmap.to_owned(),
            rbac,
        }
    }
}
