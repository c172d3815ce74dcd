//! The JSON Patch that adds missing pull secrets to a Pod.
//!
//! kube-apiserver applies the patch with evanphx/json-patch; an operation that
//! does not apply fails the user's request with a 500 even under
//! `failurePolicy: Ignore`. So the shape is chosen by whether the field exists:
//! absent → one `add /spec/imagePullSecrets` with the whole list; present →
//! one `add /spec/imagePullSecrets/-` per missing name; nothing missing → no
//! patch. Pure: the fixed parts of the document are written straight to the
//! output, no JSON tree; each secret name is written as a JSON string by
//! serde_json.

use super::json;

/// Writes the JSON Patch that adds `missing` to a pod whose
/// `spec.imagePullSecrets` is present (`field_present`) or absent.
///
/// Returns `None` when nothing is missing: no patch at all.
pub fn patch(missing: &[&str], field_present: bool) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(64 + missing.len() * 64);
    out.push('[');
    if field_present {
        for (i, name) in missing.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"op":"add","path":"/spec/imagePullSecrets/-","value":{"name":"#);
            json::push_string(&mut out, name);
            out.push_str("}}");
        }
    } else {
        out.push_str(r#"{"op":"add","path":"/spec/imagePullSecrets","value":["#);
        for (i, name) in missing.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"name":"#);
            json::push_string(&mut out, name);
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push(']');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn apply(pod: Value, patch_text: &str) -> Value {
        let ops: json_patch::Patch = serde_json::from_str(patch_text).expect("patch parses");
        let mut doc = pod;
        json_patch::patch(&mut doc, &ops).expect("patch applies");
        doc
    }

    #[test]
    fn nothing_missing_means_no_patch() {
        assert_eq!(patch(&[], true), None);
        assert_eq!(patch(&[], false), None);
    }

    #[test]
    fn absent_field_gets_the_whole_list_in_one_add() {
        let text = patch(&["a", "b"], false).expect("patch");
        let pod = apply(json!({"spec": {"containers": []}}), &text);
        assert_eq!(
            pod["spec"]["imagePullSecrets"],
            json!([{"name": "a"}, {"name": "b"}])
        );
        let ops: Vec<Value> = serde_json::from_str(&text).expect("json");
        assert_eq!(ops.len(), 1);
    }

    #[test]
    fn present_field_keeps_existing_entries_first() {
        let text = patch(&["b", "c"], true).expect("patch");
        let pod = apply(
            json!({"spec": {"imagePullSecrets": [{"name": "a"}]}}),
            &text,
        );
        assert_eq!(
            pod["spec"]["imagePullSecrets"],
            json!([{"name": "a"}, {"name": "b"}, {"name": "c"}])
        );
    }

    #[test]
    fn present_empty_list_is_appended_to() {
        let text = patch(&["a"], true).expect("patch");
        let pod = apply(json!({"spec": {"imagePullSecrets": []}}), &text);
        assert_eq!(pod["spec"]["imagePullSecrets"], json!([{"name": "a"}]));
    }

    #[test]
    fn append_on_absent_field_would_fail_which_is_why_we_never_emit_it() {
        let ops: json_patch::Patch = serde_json::from_str(
            r#"[{"op":"add","path":"/spec/imagePullSecrets/-","value":{"name":"a"}}]"#,
        )
        .expect("parses");
        let mut doc = json!({"spec": {}});
        assert!(json_patch::patch(&mut doc, &ops).is_err());
    }

    #[test]
    fn strange_names_are_escaped() {
        for name in ["q\"\\\n", "\u{1}\u{7f}\u{85}é\u{2028}😀"] {
            let text = patch(&[name], false).expect("patch");
            let pod = apply(json!({"spec": {}}), &text);
            assert_eq!(pod["spec"]["imagePullSecrets"][0]["name"], name);
        }
    }

    #[test]
    fn names_are_written_as_serde_json_writes_them() {
        let mut names: Vec<String> = (0u8..=0x7f).map(|b| format!("a{}z", b as char)).collect();
        names.extend(["", "pull-secret.corp", "é", "\u{2028}"].map(str::to_owned));
        for name in &names {
            let mut out = String::new();
            json::push_string(&mut out, name);
            assert_eq!(
                out,
                serde_json::to_string(name).expect("writes"),
                "{name:?}"
            );
        }
    }
}
