//! YAML ⇄ JSON values for the offline `mutate` command, which accepts and
//! prints Pods in either form. (The policy has its own located parser in
//! [`crate::core::policy`].)

use serde_json::{Map, Number, Value};
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

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
}

/// Parses a single YAML document into a JSON value.
pub fn to_json(text: &str) -> Result<Value, YamlError> {
    let docs = YamlLoader::load_from_str(text).map_err(YamlError::Scan)?;
    match docs.as_slice() {
        [doc] => convert(doc),
        _ => Err(YamlError::Documents(docs.len())),
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

    #[test]
    fn rejects_several_documents() {
        assert!(matches!(
            to_json("a: 1\n---\nb: 2\n"),
            Err(YamlError::Documents(2))
        ));
        assert!(to_json("a: [\n").is_err());
    }
}
