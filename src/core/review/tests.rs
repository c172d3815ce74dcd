#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The fast reader against serde's derived readers of the same types
//! (`Review::decode` against `Review::decode_reference`): the same answer,
//! or both refusing, on the fixtures and on systematic mutations of them.
//! The `review` fuzz target runs the same comparison on arbitrary bytes.

use base64::Engine as _;

use super::*;

/// Panics when the two readers disagree on `body`.
fn agree(body: &[u8]) {
    let fast = Review::decode(body);
    let reference = Review::decode_reference(body);
    match (&fast, &reference) {
        (Ok(fast), Ok(reference)) => {
            assert_eq!(format!("{fast:?}"), format!("{reference:?}"));
        }
        (Err(_), Err(_)) => {}
        // serde's derived readers take a struct written as an array of its
        // fields; the fast reader refuses it (Kubernetes never writes one).
        (Err(DecodeReviewError::Json(JsonError::Type { array: true, .. })), Ok(_)) => {}
        _ => panic!(
            "readers disagree on {:?}:\nfast: {fast:?}\nreference: {reference:?}",
            String::from_utf8_lossy(body)
        ),
    }
}

fn fixtures() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut bodies: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    bodies.sort();
    assert!(bodies.len() >= 8);
    bodies
}

#[test]
fn the_fixtures_read_the_same() {
    for body in fixtures() {
        assert!(Review::decode(&body).is_ok());
        agree(&body);
        // Compact, as kube-apiserver sends it.
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        agree(&serde_json::to_vec(&value).unwrap());
    }
}

#[test]
fn every_truncation_and_every_dropped_byte_reads_the_same() {
    let body =
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(&fixtures()[2]).unwrap())
            .unwrap();
    for end in 0..body.len() {
        agree(&body[..end]);
    }
    for at in 0..body.len() {
        let mut cut = body.clone();
        cut.remove(at);
        agree(&cut);
    }
}

#[test]
fn every_value_replaced_reads_the_same() {
    // Each string, number, literal, object and array position of each
    // fixture gets each of these in turn: other types, null, escapes,
    // invalid UTF-8, duplicates and arrays where objects belong.
    let replacements: &[&[u8]] = &[
        b"null",
        b"true",
        b"7",
        b"-1.5e3",
        b"\"\"",
        b"\"x\"",
        br#""\u0050od""#,
        b"\"\xff\"",
        b"[]",
        b"{}",
        br#"[{"name":"a","image":"nginx"}]"#,
        br#"{"kind":"Pod"}"#,
        br#"["","v1","Pod"]"#,
        br#"{"name":"n","name":"m"}"#,
        br#"{"\u006eame":"n"}"#,
    ];
    for body in fixtures() {
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let body = serde_json::to_vec(&value).unwrap();
        for (start, end) in value_spans(&body) {
            for replacement in replacements {
                let mut changed = body[..start].to_vec();
                changed.extend_from_slice(replacement);
                changed.extend_from_slice(&body[end..]);
                agree(&changed);
            }
        }
    }
}

#[test]
fn keys_renamed_duplicated_or_escaped_read_the_same() {
    for body in fixtures() {
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let body = serde_json::to_vec(&value).unwrap();
        for (start, end) in key_spans(&body) {
            let key = &body[start..end];
            // Drop the key's entry by renaming it away, escape its first
            // letter, and give the entry twice.
            let mut renamed = body[..start].to_vec();
            renamed.extend_from_slice(b"\"zz");
            renamed.extend_from_slice(&body[start + 1..]);
            agree(&renamed);
            if key.len() > 2 {
                let mut escaped = body[..start + 1].to_vec();
                escaped.extend_from_slice(format!("\\u{:04x}", key[1]).as_bytes());
                escaped.extend_from_slice(&body[start + 2..]);
                agree(&escaped);
            }
            let entry_end = value_end(&body, end + 1);
            let mut twice = body[..entry_end].to_vec();
            twice.push(b',');
            twice.extend_from_slice(&body[start..entry_end]);
            twice.extend_from_slice(&body[entry_end..]);
            agree(&twice);
        }
    }
}

#[test]
fn odd_but_valid_documents_read_the_same() {
    for body in [
        &br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":{"spec":{"containers":[{"image":"nginx"}]}},"kind":{"kind":"Pod"}}}"#[..],
        br#"  {"request":{"uid":"u","kind":null,"resource":null,"object":null},"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1"}  "#,
        br#"["admission.k8s.io/v1","AdmissionReview",{"uid":"u"}]"#,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"object":{"metadata":{"annotations":{"kubernetes.io/config.mirror":"x"}},"spec":{}}}}"#,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"object":{"metadata":{"annotations":null},"spec":{"containers":null,"imagePullSecrets":[{},{"name":null}]}}}}"#,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","dryRun":null,"dryRun":true}}"#,
    ] {
        agree(body);
    }
}

/// Byte ranges of every value in a compact JSON document.
fn value_spans(body: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let c = body[at];
        let starts_value = at == 0 || matches!(body[at - 1], b':' | b'[' | b',');
        let is_key = c == b'"' && {
            let end = value_end(body, at);
            body.get(end) == Some(&b':')
        };
        if starts_value && !is_key && !matches!(c, b']' | b'}') {
            spans.push((at, value_end(body, at)));
        }
        at += if c == b'"' {
            value_end(body, at) - at
        } else {
            1
        };
    }
    spans
}

/// Byte ranges of every key (with its quotes).
fn key_spans(body: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut at = 0;
    while at < body.len() {
        if body[at] == b'"' {
            let end = value_end(body, at);
            if body.get(end) == Some(&b':') {
                spans.push((at, end));
            }
            at = end;
        } else {
            at += 1;
        }
    }
    spans
}

/// Where the value starting at `at` ends.
fn value_end(body: &[u8], at: usize) -> usize {
    let mut r = Reader::new(&body[at..]);
    r.skip().expect("a value");
    at + r.position()
}

// The serde-derived response writer that `Review::respond` replaced: the
// reference its output is checked against, byte for byte.
#[derive(serde::Serialize)]
struct ResponseReview<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    response: Response<'a>,
}

#[derive(serde::Serialize)]
struct Response<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(rename = "patchType", skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    warnings: &'a [String],
    #[serde(
        rename = "auditAnnotations",
        skip_serializing_if = "AuditAnnotations::is_empty"
    )]
    audit_annotations: &'a AuditAnnotations,
}

fn reference_respond(
    review: &Review<'_>,
    patch: Option<&str>,
    warnings: &[String],
    annotations: &AuditAnnotations,
) -> Vec<u8> {
    let patch = patch.map(|p| base64::engine::general_purpose::STANDARD.encode(p));
    let body = ResponseReview {
        api_version: review.version.as_str(),
        kind: "AdmissionReview",
        response: Response {
            uid: &review.request.uid,
            allowed: true,
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            warnings,
            audit_annotations: annotations,
        },
    };
    serde_json::to_vec(&body).unwrap()
}

#[test]
fn responses_are_written_as_the_serde_writer_wrote_them() {
    let bodies = [
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002"}}"#.to_vec(),
        br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"q\"u\\o\nt\u00e9\u0001"}}"#.to_vec(),
    ];
    let patches = [
        None,
        Some(""),
        Some("["),
        Some("[{"),
        Some("[{}"),
        Some(r#"[{"op":"add","path":"/spec/imagePullSecrets","value":[{"name":"a"}]}]"#),
    ];
    let warnings = [
        vec![],
        vec!["plain".to_owned()],
        vec!["with \"quotes\"\n and caf\u{e9}".to_owned(), String::new()],
    ];
    let annotations = [
        AuditAnnotations::default(),
        AuditAnnotations {
            injected_secrets: Some("a,b".to_owned()),
            would_inject_secrets: None,
        },
        AuditAnnotations {
            injected_secrets: None,
            would_inject_secrets: Some("\"x\"".to_owned()),
        },
        AuditAnnotations {
            injected_secrets: Some("caf\u{e9}\u{7f},\u{2028}".to_owned()),
            would_inject_secrets: Some(String::new()),
        },
    ];
    for body in &bodies {
        let review = Review::decode(body).unwrap();
        for patch in patches {
            for warnings in &warnings {
                for annotations in &annotations {
                    let ours = review.respond(patch, warnings, annotations);
                    let reference = reference_respond(&review, patch, warnings, annotations);
                    assert_eq!(
                        String::from_utf8_lossy(&ours),
                        String::from_utf8_lossy(&reference)
                    );
                }
            }
        }
    }
}
