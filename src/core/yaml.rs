//! YAML ⇄ JSON values for the offline `mutate` command, which accepts and
//! prints Pods in either form. (The policy has its own located parser in
//! [`crate::core::policy`], which refuses anchors and aliases outright.)
//!
//! Anchors and aliases are accepted here (hand-written Pods use them), but
//! bounded: before the document is built, one pass over the parser's
//! events works out how many nodes the aliases would copy, and a document
//! whose aliases expand to more than [`MAX_ALIAS_NODES`] nodes (a
//! "billion laughs" bomb) or that nests deeper than [`MAX_DEPTH`] is
//! refused before any of it is built.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

/// Most nodes alias expansion may add to a document. A Pod that shares
/// blocks through anchors adds hundreds or thousands; a 9×9 alias bomb
/// would add 387 million.
pub const MAX_ALIAS_NODES: u64 = 100_000;
/// Deepest nesting accepted (serde_json's limit for the same documents).
pub const MAX_DEPTH: usize = 128;

/// Why a YAML text could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// The text is not YAML.
    #[error("{0}")]
    Scan(yaml_rust2::ScanError),
    /// The text holds no document, or more than one.
    #[error("expected exactly one YAML document, found {0}")]
    Documents(usize),
    /// A value has no JSON equivalent.
    #[error("unsupported YAML value: {0}")]
    Unsupported(String),
    /// Writing YAML failed.
    #[error("cannot write YAML: {0}")]
    Emit(String),
    /// The aliases would copy too many nodes.
    #[error(
        "YAML aliases expand to more than {MAX_ALIAS_NODES} nodes (line {line}); refusing the document"
    )]
    AliasBomb {
        /// Where the limit was crossed.
        line: usize,
    },
    /// The document nests too deeply.
    #[error("YAML nesting is deeper than {MAX_DEPTH} levels (line {line})")]
    TooDeep {
        /// Where the limit was crossed.
        line: usize,
    },
}

/// Parses a single YAML document into a JSON value.
pub fn to_json(text: &str) -> Result<Value, YamlError> {
    check_bounds(text)?;
    let docs = YamlLoader::load_from_str(text).map_err(YamlError::Scan)?;
    match docs.as_slice() {
        [doc] => convert(doc),
        _ => Err(YamlError::Documents(docs.len())),
    }
}

/// One pass over the events: the nesting depth, and the nodes every alias
/// would copy (the size of the node its anchor names), summed.
fn check_bounds(text: &str) -> Result<(), YamlError> {
    // Open collections: (anchor id, nodes so far); sizes of anchored nodes.
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    let mut copied: u64 = 0;
    let mut parser = Parser::new_from_str(text);
    let add = |open: &mut Vec<(usize, u64)>, n: u64| {
        if let Some((_, count)) = open.last_mut() {
            *count = count.saturating_add(n);
        }
    };
    loop {
        let (event, mark) = parser.next_token().map_err(YamlError::Scan)?;
        match event {
            Event::StreamEnd => return Ok(()),
            Event::Scalar(_, _, anchor, _) => {
                if anchor != 0 {
                    sizes.insert(anchor, 1);
                }
                add(&mut open, 1);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if open.len() >= MAX_DEPTH {
                    return Err(YamlError::TooDeep { line: mark.line() });
                }
                open.push((anchor, 1));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, count)) = open.pop() {
                    if anchor != 0 {
                        sizes.insert(anchor, count);
                    }
                    add(&mut open, count);
                }
            }
            Event::Alias(anchor) => {
                let size = sizes.get(&anchor).copied().unwrap_or(1);
                copied = copied.saturating_add(size);
                if copied > MAX_ALIAS_NODES {
                    return Err(YamlError::AliasBomb { line: mark.line() });
                }
                add(&mut open, size);
            }
            Event::Nothing | Event::StreamStart | Event::DocumentStart | Event::DocumentEnd => {}
        }
    }
}

fn convert(yaml: &Yaml) -> Result<Value, YamlError> {
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::Number((*i).into()),
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| YamlError::Unsupported(text.clone()))?,
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(convert).collect::<Result<_, _>>()?),
        Yaml::Hash(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    Yaml::Real(r) => r.clone(),
                    other => return Err(YamlError::Unsupported(format!("mapping key {other:?}"))),
                };
                out.insert(key, convert(v)?);
            }
            Value::Object(out)
        }
        Yaml::Alias(_) | Yaml::BadValue => {
            return Err(YamlError::Unsupported(format!("{yaml:?}")));
        }
    })
}

/// Writes a JSON value as a YAML document.
pub fn from_json(value: &Value) -> Result<String, YamlError> {
    let mut out = String::new();
    YamlEmitter::new(&mut out)
        .dump(&back(value))
        .map_err(|e| YamlError::Emit(format!("{e:?}")))?;
    out.push('\n');
    Ok(out)
}

fn back(value: &Value) -> Yaml {
    match value {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(items) => Yaml::Array(items.iter().map(back).collect()),
        Value::Object(map) => {
            let mut out = Hash::new();
            for (k, v) in map {
                out.insert(Yaml::String(k.clone()), back(v));
            }
            Yaml::Hash(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_a_pod() {
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "labels": {"version": "1.0", "on": "true", "n": "123"}},
            "spec": {"containers": [{"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]}]}
        });
        let text = from_json(&pod).expect("emits");
        assert_eq!(to_json(&text).expect("parses"), pod);
    }

    /// `a0: [x, x, ...]`, `a1: [*a0, *a0, ...]`, ... nine levels of nine.
    pub(crate) fn alias_bomb(levels: usize, width: usize) -> String {
        let mut text = format!("a0: &a0 [{}]\n", vec!["x"; width].join(", "));
        for i in 1..levels {
            let refs = vec![format!("*a{}", i - 1); width].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        text
    }

    #[test]
    fn an_alias_bomb_is_refused_before_it_is_built() {
        let err = to_json(&alias_bomb(9, 9)).expect_err("bomb");
        assert!(matches!(err, YamlError::AliasBomb { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("YAML aliases expand to more than 100000 nodes"),
            "{err}"
        );
        // Modest sharing is fine, and expands as YAML says.
        let value = to_json("base: &b {image: nginx}\nother: *b\n").expect("aliases");
        assert_eq!(value["other"]["image"], "nginx");
        assert!(to_json(&alias_bomb(4, 9)).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let err = to_json(&deep).expect_err("deep");
        assert!(matches!(err, YamlError::TooDeep { .. }), "{err}");
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(to_json(&fine).is_ok());
    }

    #[test]
    fn rejects_several_documents() {
        assert!(matches!(
            to_json("a: 1\n---\nb: 2\n"),
            Err(YamlError::Documents(2))
        ));
        assert!(to_json("a: [\n").is_err());
    }
}
