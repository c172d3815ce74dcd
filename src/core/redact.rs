//! What must never reach a log line or a warning: credentials written into
//! an image reference (`user:password@registry/...`), and, in the review
//! printed at debug level, environment variable values, annotation values,
//! `userInfo.extra` and Secret-like `data`.

use std::borrow::Cow;

use serde_json::Value;

/// What replaces a redacted value.
pub const REDACTED: &str = "<redacted>";

/// The credentials part of an image written as a URL with userinfo
/// (`user:pw@host/repo`, `https://user:pw@host/repo`), if any: everything
/// before the last `@` that is not followed by a digest. `repo@sha256:…`
/// and `repo:tag@sha256:…` have none.
pub fn image_credentials(image: &str) -> Option<&str> {
    let rest = image.find("://").map_or(image, |i| &image[i + 3..]);
    let at = rest.rfind('@')?;
    let end = if is_digest(&rest[at + 1..]) {
        // `creds@host/repo@sha256:…`: the credentials end at an earlier `@`.
        rest[..at].rfind('@')?
    } else {
        at
    };
    let creds = &rest[..end];
    (!creds.is_empty()).then_some(creds)
}

/// `algorithm:encoded` as in distribution/reference (no `/`).
fn is_digest(text: &str) -> bool {
    let Some((algorithm, encoded)) = text.split_once(':') else {
        return false;
    };
    !algorithm.is_empty()
        && !encoded.is_empty()
        && algorithm
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+._-".contains(c))
        && encoded
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "=_-".contains(c))
}

/// `text` with the credentials of `image` (if it has any) replaced by
/// [`REDACTED`]; for messages that quote the image or parts of it.
pub fn credentials_of<'t>(image: &str, text: &'t str) -> Cow<'t, str> {
    match image_credentials(image) {
        Some(creds) if text.contains(creds) => Cow::Owned(text.replace(creds, REDACTED)),
        _ => Cow::Borrowed(text),
    }
}

/// The image with its credentials (if any) replaced by [`REDACTED`].
pub fn image(image: &str) -> Cow<'_, str> {
    credentials_of(image, image)
}

/// A review body for a debug log: the same JSON with every `env[].value`,
/// every annotation value, `userInfo.extra`, `data`/`stringData`/
/// `binaryData` values and image credentials replaced. A body that is not
/// JSON is described, not printed.
pub fn review(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(mut value) => {
            redact_value(&mut value);
            value.to_string()
        }
        Err(_) => format!("<{} bytes, not JSON>", body.len()),
    }
}

fn redact_value(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match (key.as_str(), child) {
                    ("env", Value::Array(vars)) => {
                        for var in vars.iter_mut() {
                            if let Some(v) = var.get_mut("value") {
                                *v = Value::String(REDACTED.to_owned());
                            }
                        }
                    }
                    (
                        "annotations" | "extra" | "data" | "stringData" | "binaryData",
                        Value::Object(entries),
                    ) => {
                        for v in entries.values_mut() {
                            *v = Value::String(REDACTED.to_owned());
                        }
                    }
                    ("image", Value::String(text)) => {
                        if let Cow::Owned(clean) = image(text) {
                            *text = clean;
                        }
                    }
                    (_, child) => redact_value(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_images_are_found_and_digests_are_not_credentials() {
        for (image, creds) in [
            ("user:pw@registry.example.com/app:1", Some("user:pw")),
            ("https://user:pw@registry.example.com/app", Some("user:pw")),
            ("user:p/w@host/app@sha256:abcd", Some("user:p/w")),
            ("user:pw@host", Some("user:pw")),
            ("nginx@sha256:0123abcd", None),
            ("nginx:1.25@sha256:0123abcd", None),
            ("registry.example.com/app:1", None),
            ("@host/app", None),
        ] {
            assert_eq!(image_credentials(image), creds, "{image}");
        }
        assert_eq!(
            super::image("user:pw@registry.example.com/app"),
            "<redacted>@registry.example.com/app"
        );
        assert_eq!(
            credentials_of("u:s3cret@h/a", "image \"u:s3cret@h/a\" (bad u:s3cret)"),
            "image \"<redacted>@h/a\" (bad <redacted>)"
        );
    }

    #[test]
    fn a_review_for_the_debug_log_keeps_its_shape_and_loses_its_secrets() {
        let body = serde_json::json!({
            "request": {
                "uid": "u1",
                "userInfo": {"username": "alice", "extra": {"token-id": ["s3cret-extra"]}},
                "object": {
                    "metadata": {"name": "p", "annotations": {"note": "s3cret-annotation"}},
                    "spec": {"containers": [{
                        "name": "c",
                        "image": "me:s3cret-pw@registry.example.com/app",
                        "env": [{"name": "TOKEN", "value": "s3cret-env"}, {"name": "REF", "valueFrom": {"secretKeyRef": {"name": "x"}}}]
                    }]}
                }
            }
        });
        let text = review(body.to_string().as_bytes());
        assert!(!text.contains("s3cret"), "{text}");
        let back: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(back["request"]["uid"], "u1");
        assert_eq!(back["request"]["userInfo"]["username"], "alice");
        let container = &back["request"]["object"]["spec"]["containers"][0];
        assert_eq!(container["env"][0]["name"], "TOKEN");
        assert_eq!(container["env"][0]["value"], REDACTED);
        assert_eq!(
            container["env"][1]["valueFrom"]["secretKeyRef"]["name"],
            "x"
        );
        assert_eq!(container["image"], "<redacted>@registry.example.com/app");
        assert_eq!(review(b"\xff not json"), "<10 bytes, not JSON>");
    }
}
