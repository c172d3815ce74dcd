//! Kubernetes label-selector evaluation over a Namespace's labels, with the
//! semantics of `metav1.LabelSelector`: every `matchLabels` pair and every
//! `matchExpressions` requirement must hold; an empty selector matches all.

use std::collections::BTreeMap;

use super::model::{LabelSelector, SelectorOperator};

#[derive(Debug, Clone)]
struct Requirement {
    key: Box<str>,
    operator: SelectorOperator,
    values: Box<[Box<str>]>,
}

impl Requirement {
    fn holds(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&*self.key);
        let listed = |v: &String| self.values.iter().any(|x| **x == **v);
        match self.operator {
            SelectorOperator::In => value.is_some_and(listed),
            SelectorOperator::NotIn => !value.is_some_and(listed),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

/// A non-empty label selector ready for matching.
#[derive(Debug, Clone)]
pub(crate) struct CompiledSelector {
    labels: Box<[(Box<str>, Box<str>)]>,
    requirements: Box<[Requirement]>,
}

impl CompiledSelector {
    /// Compiles a selector; `None` for an empty one (which matches everything).
    pub(crate) fn new(selector: &LabelSelector) -> Option<CompiledSelector> {
        if selector.is_empty() {
            return None;
        }
        Some(CompiledSelector {
            labels: selector
                .match_labels
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
            requirements: selector
                .match_expressions
                .iter()
                .map(|r| Requirement {
                    key: r.key.as_str().into(),
                    operator: r.operator,
                    values: r.values.iter().map(|v| v.as_str().into()).collect(),
                })
                .collect(),
        })
    }

    /// Whether a namespace with these labels is selected.
    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels
            .iter()
            .all(|(k, v)| labels.get(&**k).is_some_and(|x| **x == **v))
            && self.requirements.iter().all(|r| r.holds(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::policy::model::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, operator: SelectorOperator, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn empty_selector_compiles_to_none() {
        assert!(CompiledSelector::new(&LabelSelector::default()).is_none());
    }

    #[test]
    fn selector_table() {
        use SelectorOperator::*;
        let prod = labels(&[("tier", "prod"), ("registry-access", "harbor")]);
        let dev = labels(&[("tier", "dev")]);
        let none = labels(&[]);
        let cases: Vec<(LabelSelector, [bool; 3])> = vec![
            (
                LabelSelector {
                    match_labels: labels(&[("registry-access", "harbor")]),
                    ..Default::default()
                },
                [true, false, false],
            ),
            (
                LabelSelector {
                    match_labels: labels(&[("tier", "prod"), ("registry-access", "harbor")]),
                    ..Default::default()
                },
                [true, false, false],
            ),
            (
                sel(vec![req("tier", In, &["prod", "staging"])]),
                [true, false, false],
            ),
            (
                sel(vec![req("tier", NotIn, &["prod"])]),
                [false, true, true],
            ),
            (sel(vec![req("tier", Exists, &[])]), [true, true, false]),
            (
                sel(vec![req("tier", DoesNotExist, &[])]),
                [false, false, true],
            ),
            (
                LabelSelector {
                    match_labels: labels(&[("tier", "dev")]),
                    match_expressions: vec![req("registry-access", DoesNotExist, &[])],
                },
                [false, true, false],
            ),
        ];
        for (i, (s, want)) in cases.iter().enumerate() {
            let c = CompiledSelector::new(s).unwrap();
            let got = [c.matches(&prod), c.matches(&dev), c.matches(&none)];
            assert_eq!(got, *want, "case {i}: {s:?}");
        }
    }

    fn sel(match_expressions: Vec<LabelSelectorRequirement>) -> LabelSelector {
        LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions,
        }
    }
}
