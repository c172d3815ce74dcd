//! The real `kubectl` and `helm` the manifest tests run, and what the
//! objects they build must look like (`kinds`).
//!
//! Found in this order: `$PSI_KUBECTL` / `$PSI_HELM`, then `.ci/bin/`
//! (where `.ci/install-tools` puts kubectl v1.34 and helm v4.1), then
//! `PATH`. Under CI (`CI=true`) a missing tool fails the test; elsewhere
//! the test is skipped with a loud note on stderr.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod kinds;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

fn find(name: &str, env_var: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{env_var}={} does not exist",
            path.display()
        );
        return Some(path);
    }
    let installed = repo().join(".ci/bin").join(name);
    if installed.is_file() {
        return Some(installed);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    assert!(
        !on_ci(),
        "{name} not found (CI=true): run .ci/install-tools, or set {env_var}"
    );
    eprintln!(
        "\n*** NOTE: {name} not found ({env_var}, .ci/bin/{name}, PATH): test SKIPPED. \
         Run .ci/install-tools to install kubectl v1.34 and helm v4.1 into .ci/bin/. ***\n"
    );
    None
}

/// `kubectl`, or `None` (with a note) outside CI.
pub fn kubectl() -> Option<PathBuf> {
    find("kubectl", "PSI_KUBECTL")
}

/// `helm`, or `None` (with a note) outside CI.
pub fn helm() -> Option<PathBuf> {
    find("helm", "PSI_HELM")
}

/// A command for `tool` that keeps helm's state out of the user's home.
pub fn command(tool: &Path) -> Command {
    let mut cmd = Command::new(tool);
    let state = Path::new(env!("CARGO_TARGET_TMPDIR")).join("helm-home");
    cmd.env("HELM_CACHE_HOME", state.join("cache"))
        .env("HELM_CONFIG_HOME", state.join("config"))
        .env("HELM_DATA_HOME", state.join("data"))
        .env("KUBECONFIG", state.join("no-kubeconfig"));
    cmd
}

fn describe(tool: &Path, args: &[&OsStr]) -> String {
    let mut line = tool.display().to_string();
    for a in args {
        line.push(' ');
        line.push_str(&a.to_string_lossy());
    }
    line
}

/// Runs `tool args`, whatever the result.
pub fn output<S: AsRef<OsStr>>(tool: &Path, args: &[S]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
    command(tool)
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(tool, &args)))
}

/// Runs `tool args` and returns its stdout; fails the test on an error.
pub fn run<S: AsRef<OsStr>>(tool: &Path, args: &[S]) -> String {
    let out = output(tool, args);
    let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}{}",
        describe(tool, &args),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The objects of a multi-document YAML stream (as kubectl and helm print
/// them), as JSON; empty documents are dropped.
pub fn objects(text: &str, origin: &str) -> Vec<serde_json::Value> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") {
            docs.push(String::new());
        } else {
            let doc = docs.last_mut().unwrap();
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.iter()
        .enumerate()
        .filter(|(_, doc)| {
            doc.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|(i, doc)| {
            pull_secret_injector::core::yaml::to_json(doc)
                .unwrap_or_else(|e| panic!("{origin}, document {i}: not YAML: {e}\n{doc}"))
        })
        .collect()
}

/// `kubectl kustomize DIR` as objects, or `None` without kubectl.
pub fn kustomize(dir: &Path) -> Option<Vec<serde_json::Value>> {
    let kubectl = kubectl()?;
    let text = run(&kubectl, &[OsStr::new("kustomize"), dir.as_os_str()]);
    Some(objects(
        &text,
        &format!("kubectl kustomize {}", dir.display()),
    ))
}
