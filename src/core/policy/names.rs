//! Kubernetes name syntax: RFC 1123 labels (rule names), DNS-1123
//! subdomains (Secret names, label-key prefixes), and label keys and values.
//!
//! Each check returns a [`NameError`] saying what is wrong; the validator
//! adds the location and what the name is for.

/// Why a name is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters, found {len}")]
    TooLong { max: usize, len: usize },
    #[error("uppercase letter {0:?} is not allowed; names are lowercase")]
    Uppercase(char),
    #[error("character {0:?} is not allowed; use {1}")]
    BadChar(char, &'static str),
    #[error("must start and end with {0}")]
    Edge(&'static str),
    #[error("has an empty part between dots")]
    EmptyPart,
    #[error("must have at most one '/'")]
    TwoSlashes,
    #[error("prefix {0:?} before '/' is not a DNS subdomain: {1}")]
    Prefix(String, Box<NameError>),
    #[error("name part after '/' {0}")]
    AfterSlash(Box<NameError>),
}

const DNS_CHARS: &str = "lowercase letters, digits and '-'";
const DNS_EDGE: &str = "a lowercase letter or digit";
const QUALIFIED_CHARS: &str = "letters, digits, '-', '_' and '.'";
const QUALIFIED_EDGE: &str = "a letter or digit";

/// Checks one DNS label part: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, length not checked.
fn dns_part(s: &str) -> Result<(), NameError> {
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            return Err(NameError::Uppercase(c));
        }
        if !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(NameError::BadChar(c, DNS_CHARS));
        }
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(NameError::Edge(DNS_EDGE));
    }
    Ok(())
}

fn length(s: &str, max: usize) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > max {
        return Err(NameError::TooLong { max, len: s.len() });
    }
    Ok(())
}

/// RFC 1123 label: at most 63 of `[a-z0-9-]`, starting and ending alphanumeric.
pub(crate) fn check_dns_label(s: &str) -> Result<(), NameError> {
    length(s, 63)?;
    dns_part(s)
}

/// DNS-1123 subdomain: at most 253 characters, dot-separated RFC 1123 labels.
pub(crate) fn check_dns_subdomain(s: &str) -> Result<(), NameError> {
    length(s, 253)?;
    for part in s.split('.') {
        if part.is_empty() {
            return Err(NameError::EmptyPart);
        }
        dns_part(part)?;
    }
    Ok(())
}

/// A qualified-name part: at most 63 of `[A-Za-z0-9._-]`, starting and ending alphanumeric.
fn check_qualified_part(s: &str) -> Result<(), NameError> {
    length(s, 63)?;
    for c in s.chars() {
        if !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return Err(NameError::BadChar(c, QUALIFIED_CHARS));
        }
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge_ok(s.chars().next()) || !edge_ok(s.chars().last()) {
        return Err(NameError::Edge(QUALIFIED_EDGE));
    }
    Ok(())
}

/// Label key: an optional DNS-subdomain prefix and '/', then a qualified name.
pub(crate) fn check_label_key(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    match s.split_once('/') {
        None => check_qualified_part(s),
        Some((prefix, name)) => {
            if name.contains('/') {
                return Err(NameError::TwoSlashes);
            }
            check_dns_subdomain(prefix)
                .map_err(|e| NameError::Prefix(prefix.to_owned(), Box::new(e)))?;
            check_qualified_part(name).map_err(|e| NameError::AfterSlash(Box::new(e)))
        }
    }
}

/// Label value: empty, or a qualified name of at most 63 characters.
pub(crate) fn check_label_value(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Ok(());
    }
    check_qualified_part(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["a", "corp-harbor", "a1", "0", &"a".repeat(63)] {
            assert_eq!(check_dns_label(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_dns_label(""), Err(NameError::Empty));
        assert_eq!(check_dns_label("Corp"), Err(NameError::Uppercase('C')));
        assert_eq!(
            check_dns_label("a_b"),
            Err(NameError::BadChar('_', DNS_CHARS))
        );
        assert_eq!(
            check_dns_label("a.b"),
            Err(NameError::BadChar('.', DNS_CHARS))
        );
        assert_eq!(check_dns_label("-a"), Err(NameError::Edge(DNS_EDGE)));
        assert_eq!(check_dns_label("a-"), Err(NameError::Edge(DNS_EDGE)));
        assert!(matches!(
            check_dns_label(&"a".repeat(64)),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn dns_subdomains() {
        for ok in ["harbor-pull", "a.b.c", "x1.y-2", "123", "true"] {
            assert_eq!(check_dns_subdomain(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_dns_subdomain("a..b"), Err(NameError::EmptyPart));
        assert_eq!(check_dns_subdomain(".a"), Err(NameError::EmptyPart));
        assert_eq!(check_dns_subdomain("a.-b"), Err(NameError::Edge(DNS_EDGE)));
        assert_eq!(
            check_dns_subdomain("a b"),
            Err(NameError::BadChar(' ', DNS_CHARS))
        );
        let long = vec!["a".repeat(63); 4].join(".");
        assert!(matches!(
            check_dns_subdomain(&long),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn label_keys_and_values() {
        for ok in [
            "tier",
            "app.kubernetes.io/name",
            "A_b.C-d",
            "kubernetes.io/metadata.name",
        ] {
            assert_eq!(check_label_key(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_label_key(""), Err(NameError::Empty));
        assert_eq!(check_label_key("a/b/c"), Err(NameError::TwoSlashes));
        assert!(matches!(
            check_label_key("Bad_Prefix/x"),
            Err(NameError::Prefix(..))
        ));
        assert!(matches!(
            check_label_key("example.com/"),
            Err(NameError::AfterSlash(_))
        ));
        assert!(matches!(check_label_key("/x"), Err(NameError::Prefix(..))));
        assert_eq!(check_label_key("-x"), Err(NameError::Edge(QUALIFIED_EDGE)));
        for ok in ["", "prod", "v1.2_3-x", &"a".repeat(63)] {
            assert_eq!(check_label_value(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            check_label_value("a b"),
            Err(NameError::BadChar(' ', QUALIFIED_CHARS))
        );
        assert!(check_label_value(&"a".repeat(64)).is_err());
        assert!(check_label_value("_a").is_err());
    }
}
