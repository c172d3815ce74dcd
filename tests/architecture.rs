#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The layering of `src/` as `src/lib.rs` describes it, checked on the
//! source text so that a wrong import fails the build's tests:
//!
//! - `core` is pure: it names no other part of the crate and none of the
//!   crates or std modules that do I/O, run async code, log or talk to
//!   Kubernetes;
//! - edges point inward only: `runtime` uses `core`; `webhook` and `k8s` use
//!   `runtime` and `core`, not each other; nothing but `cmd` uses `cmd`;
//! - no two modules of the crate import each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level parts of the crate and what each may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("core", &[]),
    ("runtime", &["core"]),
    ("webhook", &["core", "runtime"]),
    ("k8s", &["core", "runtime"]),
    ("cmd", &["core", "runtime", "webhook", "k8s"]),
];

/// What the core must not name: async runtimes and servers, TLS, the
/// Kubernetes client, logging, and std's I/O, process, environment and
/// clock modules.
const FORBIDDEN_IN_CORE: &[&str] = &[
    "tokio",
    "axum",
    "hyper",
    "hyper_util",
    "tower",
    "tower_http",
    "rustls",
    "tokio_rustls",
    "kube",
    "k8s_openapi",
    "tracing",
    "tracing_subscriber",
    "prometheus_client",
    "futures",
    "arc_swap",
    "rcgen",
    "std::fs",
    "std::net",
    "std::io",
    "std::process",
    "std::env",
    "std::thread",
    "std::time",
    "std::sync",
];

/// Plain value types from those modules that do no I/O.
const VALUES_IN_CORE: &[&str] = &[
    "std::net::Ipv4Addr",
    "std::net::Ipv6Addr",
    "std::net::IpAddr",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file (`src/core/policy/mod.rs` →
/// `["core", "policy"]`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its `#[cfg(test)]`
/// modules (tests may use anything).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a file names: `crate::a::b`, `super::x`, and the first
/// segments of `use` items and `::`-qualified names (`tokio::spawn`).
fn named_paths(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if is_ident(bytes[i]) && (i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != b':') {
            let start = i;
            while i < bytes.len() && (is_ident(bytes[i]) || bytes[i..].starts_with(b"::")) {
                i += if bytes[i] == b':' { 2 } else { 1 };
            }
            let path = code[start..i].trim_end_matches("::");
            if path.contains("::") {
                out.insert(path.to_owned());
            }
        } else {
            i += 1;
        }
    }
    out
}

struct Crate {
    /// Module path → code.
    files: BTreeMap<Vec<String>, String>,
}

impl Crate {
    fn load() -> Crate {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut paths = Vec::new();
        rust_files(&src, &mut paths);
        let files = paths
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).expect("read");
                (module_of(&src, p), code(&text))
            })
            .collect();
        Crate { files }
    }

    /// The crate modules each module names, as absolute module paths.
    fn imports(&self) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
        let mut out = BTreeMap::new();
        for (module, code) in &self.files {
            let mut targets = BTreeSet::new();
            for path in named_paths(code) {
                let mut segments: Vec<&str> = path.split("::").collect();
                let mut base: Vec<String> = match segments.first() {
                    Some(&"crate") => {
                        segments.remove(0);
                        Vec::new()
                    }
                    Some(&"super") => {
                        let mut base = module.clone();
                        while segments.first() == Some(&"super") {
                            segments.remove(0);
                            base.pop();
                        }
                        base
                    }
                    _ => continue,
                };
                // Resolve to the longest prefix that is a module of ours.
                let mut target = Vec::new();
                for segment in segments {
                    base.push(segment.to_owned());
                    if self.files.contains_key(&base) {
                        target = base.clone();
                    }
                }
                if !target.is_empty() && &target != module {
                    targets.insert(target);
                }
            }
            out.insert(module.clone(), targets);
        }
        out
    }
}

#[test]
fn the_core_names_no_edge_and_no_io_or_async_crate() {
    let krate = Crate::load();
    let mut offences = Vec::new();
    for (module, code) in &krate.files {
        // Test modules (`mod tests;` files) may use anything.
        if module.first().map(String::as_str) != Some("core") || module.iter().any(|m| m == "tests")
        {
            continue;
        }
        for path in named_paths(code) {
            if VALUES_IN_CORE.contains(&path.as_str()) {
                continue;
            }
            for forbidden in FORBIDDEN_IN_CORE {
                if path == *forbidden || path.starts_with(&format!("{forbidden}::")) {
                    offences.push(format!("{}: {path}", module.join("::")));
                }
            }
        }
        if code.contains("async ") || code.contains(".await") {
            offences.push(format!("{}: async code", module.join("::")));
        }
    }
    assert!(
        offences.is_empty(),
        "the core must stay pure:\n{offences:#?}"
    );
}

#[test]
fn edges_point_inward_only() {
    let krate = Crate::load();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut offences = Vec::new();
    for (module, targets) in krate.imports() {
        let Some(part) = module.first() else {
            continue; // lib.rs and main.rs
        };
        let may = allowed.get(part.as_str()).unwrap_or_else(|| {
            panic!("src/{part} is not a known part of the crate: add it to ALLOWED and lib.rs")
        });
        for target in targets {
            let to = &target[0];
            if to != part && !may.contains(&to.as_str()) {
                offences.push(format!("{} → {}", module.join("::"), target.join("::")));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "imports against the layering:\n{offences:#?}"
    );
}

#[test]
fn no_two_modules_import_each_other() {
    let krate = Crate::load();
    let imports = krate.imports();
    let mut cycles = Vec::new();
    for (a, targets) in &imports {
        for b in targets {
            // Compare siblings: a's and b's paths below their common parent.
            let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
            let (a_top, b_top) = (
                &a[..(common + 1).min(a.len())],
                &b[..(common + 1).min(b.len())],
            );
            if a_top == b_top || a_top.len() <= common || b_top.len() <= common {
                continue;
            }
            let back = imports
                .iter()
                .any(|(c, ts)| c.starts_with(b_top) && ts.iter().any(|t| t.starts_with(a_top)));
            if back && a < b {
                cycles.push(format!("{} ⇄ {}", a_top.join("::"), b_top.join("::")));
            }
        }
    }
    cycles.sort();
    cycles.dedup();
    assert!(
        cycles.is_empty(),
        "modules that import each other:\n{cycles:#?}"
    );
}

#[test]
fn the_checker_sees_imports() {
    // Guard against a checker that passes because it sees nothing.
    let krate = Crate::load();
    let imports = krate.imports();
    let serve = imports
        .get(&vec!["cmd".to_owned(), "serve".to_owned()])
        .expect("cmd::serve exists");
    assert!(
        serve.contains(&vec!["webhook".to_owned(), "http".to_owned()]),
        "{serve:?}"
    );
    let decide = imports
        .get(&vec!["core".to_owned(), "decide".to_owned()])
        .expect("core::decide exists");
    assert!(
        decide.contains(&vec!["core".to_owned(), "review".to_owned()]),
        "{decide:?}"
    );
    assert!(named_paths("use tokio::sync::watch;").contains("tokio::sync::watch"));
}
