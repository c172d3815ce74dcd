//! The validated policy document (format v1) as plain data.
//!
//! Values are kept as the operator wrote them (patterns are normalized only
//! when compiled). A [`Policy`] can only be obtained from
//! [`parse`](super::parse), so holding one means the document is valid.

use std::collections::BTreeMap;

/// A validated policy: its rules and its managed secrets, in document order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub(crate) rules: Vec<Rule>,
    pub(crate) secrets: Vec<ManagedSecret>,
}

impl Policy {
    /// The rules, in document order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The managed secrets (`secrets:`), in document order; empty when the
    /// policy has none.
    pub fn secrets(&self) -> &[ManagedSecret] {
        &self.secrets
    }

    /// Takes the rules out, in document order.
    pub fn into_rules(self) -> Vec<Rule> {
        self.rules
    }
}

/// One rule: which images and namespaces get which pull secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Unique name (RFC 1123 label).
    pub name: String,
    /// Registry host patterns (`host[:port]`, labels may be globs); at least one.
    pub registries: Vec<String>,
    /// Repository path globs; empty means every repository.
    pub repositories: Vec<String>,
    /// Secret names to add (DNS-1123 subdomains); at least one.
    pub secrets: Vec<String>,
    /// Namespace restriction; `None` means every namespace.
    pub namespaces: Option<NamespaceFilter>,
}

/// A managed secret (`secrets:` entry): the `sync` controller copies the
/// Secret `from` into every namespace where the webhook would inject `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedSecret {
    /// The name rules use and every copy gets (DNS-1123 subdomain, unique).
    pub name: String,
    /// The source Secret's namespace (DNS-1123 label).
    pub from_namespace: String,
    /// The source Secret's name (DNS-1123 subdomain).
    pub from_name: String,
}

impl ManagedSecret {
    /// The source as written: `NAMESPACE/NAME`.
    pub fn source(&self) -> String {
        format!("{}/{}", self.from_namespace, self.from_name)
    }
}

/// Which namespaces a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamespaceFilter {
    /// Name globs of which one must match; `None` means every name.
    pub include: Option<Vec<String>>,
    /// Name globs of which none may match.
    pub exclude: Vec<String>,
    /// Label selector on the Namespace object's labels.
    pub selector: Option<LabelSelector>,
}

/// A Kubernetes `LabelSelector`; all of its terms must hold. An empty
/// selector matches every namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

impl LabelSelector {
    /// True when the selector has no terms (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelectorRequirement {
    /// Label key.
    pub key: String,
    /// How the label is tested.
    pub operator: SelectorOperator,
    /// Values for `In`/`NotIn` (at least one); empty for `Exists`/`DoesNotExist`.
    pub values: Vec<String>,
}

/// A `matchExpressions` operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorOperator {
    /// The label is present and its value is one of `values`.
    In,
    /// The label is absent, or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl SelectorOperator {
    /// The operator names as written in a policy.
    pub const NAMES: [&'static str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

    /// Parses an operator name (case-sensitive, as Kubernetes does).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "In" => Some(Self::In),
            "NotIn" => Some(Self::NotIn),
            "Exists" => Some(Self::Exists),
            "DoesNotExist" => Some(Self::DoesNotExist),
            _ => None,
        }
    }

    /// The operator's name as written in a policy.
    pub fn name(self) -> &'static str {
        match self {
            Self::In => "In",
            Self::NotIn => "NotIn",
            Self::Exists => "Exists",
            Self::DoesNotExist => "DoesNotExist",
        }
    }

    /// Whether the operator takes values (`In`, `NotIn`).
    pub fn takes_values(self) -> bool {
        matches!(self, Self::In | Self::NotIn)
    }
}
