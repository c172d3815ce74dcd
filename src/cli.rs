//! The command line: argv/env ⇄ configuration, and one function per
//! subcommand. Flags are declared once with clap derive; every flag can also
//! be set through the environment variable named in `--help`.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serde_json::Value;

use crate::admission::{Review, decide};
use crate::certs;
use crate::image;
use crate::policy::{self, CompiledPolicy, NamespaceFacts, NamespaceMatch};
use crate::serve;
use crate::telemetry::LogFormat;
use crate::yaml;

/// Adds the right imagePullSecrets to new Pods, from a policy that maps
/// registries to Secret names.
#[derive(Debug, Parser)]
#[command(name = "pull-secret-injector", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the webhook (HTTPS admission endpoint, health, metrics).
    Serve(ServeArgs),
    /// Apply the policy offline to an AdmissionReview or a Pod (YAML or JSON).
    Mutate(MutateArgs),
    /// Show how images normalize and which rules and secrets they get.
    Explain(ExplainArgs),
    /// Validate a policy file; every error is printed with line and column.
    CheckPolicy(CheckPolicyArgs),
    /// Generate a CA and a serving certificate for the webhook's Service.
    Certs(CertsArgs),
}

/// Flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the HTTPS listener [default: 0.0.0.0:8443; 127.0.0.1:8443 with --dev].
    #[arg(long, env = "PSI_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// PEM certificate chain served on the HTTPS listener (re-read on change).
    #[arg(long, env = "PSI_TLS_CERT", default_value = "certs/tls.crt")]
    pub tls_cert: PathBuf,
    /// PEM private key of the certificate (re-read on change).
    #[arg(long, env = "PSI_TLS_KEY", default_value = "certs/tls.key")]
    pub tls_key: PathBuf,
    /// Policy file (YAML or JSON), re-read when it changes.
    #[arg(long, env = "PSI_POLICY_FILE", conflicts_with = "policy_configmap")]
    pub policy_file: Option<PathBuf>,
    /// Policy ConfigMap as NAMESPACE/NAME (key `policy.yaml`), watched live.
    #[arg(long, env = "PSI_POLICY_CONFIGMAP", value_name = "NAMESPACE/NAME")]
    pub policy_configmap: Option<String>,
    /// Address of the plain-HTTP metrics listener [default: 0.0.0.0:9090; 127.0.0.1:9090 with --dev].
    #[arg(long, env = "PSI_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Local development: make a localhost certificate in certs/ if none is
    /// there, use manifests/policy.yaml unless a policy is given, bind
    /// 127.0.0.1, and print a curl command to try it.
    #[arg(long, env = "PSI_DEV")]
    pub dev: bool,
    /// Log line format.
    #[arg(long, env = "PSI_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// How often the policy file and the certificate files are re-read.
    #[arg(long, env = "PSI_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_positive_duration)]
    pub reload_interval: Duration,
    /// After SIGTERM: how long to keep serving while unready, so endpoints
    /// stop routing to this pod before the listener closes.
    #[arg(long, env = "PSI_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// After the grace: how long in-flight requests may take to finish.
    #[arg(long, env = "PSI_DRAIN_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Longest a client may take for the TLS handshake.
    #[arg(long, env = "PSI_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub handshake_timeout: Duration,
    /// Largest request body accepted, in bytes. Reviews being received may
    /// hold four times this much between them; more wait for none and get 503.
    #[arg(long, env = "PSI_MAX_BODY_BYTES", default_value_t = crate::http::DEFAULT_MAX_BODY_BYTES, value_parser = parse_body_limit)]
    pub max_body_bytes: usize,
    /// Most TLS connections open at once; further ones are closed on accept.
    #[arg(long, env = "PSI_MAX_CONNECTIONS", default_value_t = crate::server::DEFAULT_MAX_CONNECTIONS, value_parser = parse_connection_limit)]
    pub max_connections: usize,
    /// Namespace labels for selectors: how long to wait when fetching a
    /// namespace the cache has not seen yet.
    #[arg(long, env = "PSI_NAMESPACE_LOOKUP_TIMEOUT", default_value = "2s", value_parser = parse_positive_duration)]
    pub namespace_lookup_timeout: Duration,
}

#[derive(Debug, Args)]
struct MutateArgs {
    /// Policy file (YAML or JSON).
    #[arg(long, env = "PSI_POLICY")]
    policy: PathBuf,
    /// AdmissionReview or Pod, YAML or JSON; `-` reads stdin.
    #[arg(default_value = "-")]
    input: String,
    /// Namespace of the pod when the input names none [default: default].
    #[arg(long, env = "PSI_NAMESPACE")]
    namespace: Option<String>,
    /// A label of the namespace, for rules with a namespace selector
    /// (repeatable). Without any, such rules do not match.
    #[arg(long = "namespace-label", value_name = "KEY=VALUE", value_parser = parse_label)]
    namespace_labels: Vec<(String, String)>,
}

#[derive(Debug, Args)]
struct ExplainArgs {
    /// Policy file (YAML or JSON).
    #[arg(long, env = "PSI_POLICY")]
    policy: PathBuf,
    /// Apply the rules' namespace conditions for this namespace; without it
    /// they are ignored.
    #[arg(long, env = "PSI_NAMESPACE")]
    namespace: Option<String>,
    /// A label of that namespace, for namespace selectors (repeatable).
    #[arg(long = "namespace-label", value_name = "KEY=VALUE", value_parser = parse_label)]
    namespace_labels: Vec<(String, String)>,
    /// Image references; without any, one per line from stdin, verbatim.
    images: Vec<String>,
}

#[derive(Debug, Args)]
struct CheckPolicyArgs {
    /// Policy file (YAML or JSON); `-` reads stdin.
    file: PathBuf,
}

#[derive(Debug, Args)]
struct CertsArgs {
    /// Name of the webhook's Service.
    #[arg(long, env = "PSI_SERVICE")]
    service: String,
    /// Namespace of the Service.
    #[arg(long, env = "PSI_NAMESPACE")]
    namespace: String,
    /// Where to write ca.crt, tls.crt and tls.key.
    #[arg(long, env = "PSI_OUT_DIR", default_value = "certs")]
    out_dir: PathBuf,
}

/// Parses `500ms`, `10s`, `2m` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 500ms, 10s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?}: use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// [`parse_duration`] for settings where zero makes no sense (an interval,
/// a timeout every request would hit).
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!(
            "{text:?} is zero; give a positive duration such as 500ms or 5s"
        ));
    }
    Ok(duration)
}

/// A body limit: at least 64 KiB (a Pod review is 5–20 KB) and at most 1 GiB.
fn parse_body_limit(text: &str) -> Result<usize, String> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of bytes"))?;
    if !(64 * 1024..=1 << 30).contains(&n) {
        return Err(format!(
            "{n} bytes is out of range: give 65536 (64 KiB) to 1073741824 (1 GiB)"
        ));
    }
    Ok(n)
}

fn parse_connection_limit(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a positive number of connections")),
    }
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Parses argv and runs the chosen subcommand.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Mutate(args) => mutate(args),
        Command::Explain(args) => explain(args),
        Command::CheckPolicy(args) => return check_policy(&args.file),
        Command::Certs(args) => certs_command(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

fn load_policy(path: &Path) -> anyhow::Result<CompiledPolicy> {
    let text = read_input(path)?;
    CompiledPolicy::from_text(&text).map_err(|errors| {
        anyhow::anyhow!(
            "invalid policy {}:\n{}",
            path.display(),
            prefixed(&errors, path)
        )
    })
}

fn prefixed(errors: &policy::PolicyErrors, path: &Path) -> String {
    errors
        .0
        .iter()
        .map(|e| format!("{}:{e}", path.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn check_policy(path: &Path) -> ExitCode {
    let text = match read_input(path) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    match CompiledPolicy::from_text(&text) {
        Ok(policy) => {
            println!(
                "{}: valid policy with {} rule(s)",
                path.display(),
                policy.rules().len()
            );
            for rule in policy.rules().iter().filter(|r| r.has_selector()) {
                println!(
                    "note: rule {:?} uses namespaces.selector: it is evaluated against namespace labels only when the webhook runs in a cluster (or with --namespace-label in mutate/explain); without labels it does not match",
                    rule.name()
                );
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{}", prefixed(&errors, path));
            eprintln!(
                "{}: invalid policy: {} error(s)",
                path.display(),
                errors.0.len()
            );
            ExitCode::FAILURE
        }
    }
}

/// Reads YAML or JSON into JSON bytes and a value.
fn to_json(text: &str) -> anyhow::Result<(Value, bool)> {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => Ok((value, false)),
        Err(json_err) => match yaml::to_json(text) {
            Ok(value) => Ok((value, true)),
            Err(yaml_err) => bail!("input is neither JSON ({json_err}) nor YAML ({yaml_err})"),
        },
    }
}

fn mutate(args: MutateArgs) -> anyhow::Result<()> {
    let policy = load_policy(&args.policy)?;
    let text = read_input(Path::new(&args.input))?;
    let (mut value, was_yaml) = to_json(&text)?;
    let labels: Option<BTreeMap<String, String>> =
        (!args.namespace_labels.is_empty()).then(|| args.namespace_labels.into_iter().collect());
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let mut stdout = std::io::stdout().lock();
    if kind == "AdmissionReview" {
        if let (Some(ns), Some(request)) = (
            &args.namespace,
            value.get_mut("request").and_then(Value::as_object_mut),
        ) && request
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            request.insert("namespace".to_owned(), Value::String(ns.clone()));
        }
        let body = serde_json::to_vec(&value)?;
        let review = Review::decode(&body)?;
        let decision = decide(&review.request, &policy, labels.as_ref());
        print_warnings(&decision.warnings);
        let response: Value = serde_json::from_slice(&decision.encode(&review))?;
        serde_json::to_writer_pretty(&mut stdout, &response)?;
        writeln!(stdout)?;
        return Ok(());
    }
    if !kind.is_empty() && kind != "Pod" {
        bail!("input is a {kind}; mutate takes a Pod or an AdmissionReview");
    }
    // The Pod's own namespace wins; --namespace is for Pods that name none.
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
        .map(str::to_owned)
        .or(args.namespace)
        .unwrap_or_else(|| "default".to_owned());
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "offline",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE",
            "namespace": namespace,
            "object": &value,
        }
    });
    let body = serde_json::to_vec(&review)?;
    let review = Review::decode(&body)?;
    let decision = decide(&review.request, &policy, labels.as_ref());
    print_warnings(&decision.warnings);
    if let Some(patch) = &decision.patch {
        let ops: json_patch::Patch = serde_json::from_str(patch)?;
        json_patch::patch(&mut value, &ops).context("applying the patch")?;
    }
    if was_yaml {
        write!(stdout, "{}", yaml::from_json(&value)?)?;
    } else {
        serde_json::to_writer_pretty(&mut stdout, &value)?;
        writeln!(stdout)?;
    }
    Ok(())
}

fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

fn explain(args: ExplainArgs) -> anyhow::Result<()> {
    let policy = load_policy(&args.policy)?;
    let labels: Option<BTreeMap<String, String>> =
        (!args.namespace_labels.is_empty()).then(|| args.namespace_labels.into_iter().collect());
    let facts = args.namespace.as_deref().map(|name| NamespaceFacts {
        name,
        labels: labels.as_ref(),
    });
    let mut stdout = std::io::stdout().lock();
    let mut line = |image: &str| explain_one(&mut stdout, &policy, facts.as_ref(), image);
    if args.images.is_empty() {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("cannot read images from stdin")?;
        let input = input.strip_suffix('\n').unwrap_or(&input);
        if input.is_empty() {
            return Ok(());
        }
        for image in input.split('\n') {
            line(image)?;
        }
    } else {
        for image in &args.images {
            line(image)?;
        }
    }
    Ok(())
}

/// One `explain` line, its fields in the documented order.
#[derive(Serialize)]
#[serde(untagged)]
enum Explained<'a> {
    Parsed {
        image: &'a str,
        registry: &'a str,
        repository: &'a str,
        tag: Option<&'a str>,
        digest: Option<&'a str>,
        rules: Vec<&'a str>,
        secrets: Vec<&'a str>,
    },
    Invalid {
        image: &'a str,
        error: String,
    },
}

/// Writes the `explain` line for one image.
fn explain_one(
    out: &mut impl std::io::Write,
    policy: &CompiledPolicy,
    ns: Option<&NamespaceFacts<'_>>,
    image: &str,
) -> anyhow::Result<()> {
    let mut write = |line: &Explained<'_>| -> anyhow::Result<()> {
        serde_json::to_writer(&mut *out, line)?;
        Ok(writeln!(out)?)
    };
    let reference = match image::parse(image) {
        Ok(reference) => reference,
        Err(err) => {
            return write(&Explained::Invalid {
                image,
                error: err.to_string(),
            });
        }
    };
    let mut matched = Vec::new();
    policy.match_image(reference.registry(), reference.repository(), &mut matched);
    let mut rules = Vec::new();
    let mut secrets: Vec<&str> = Vec::new();
    for &i in &matched {
        let rule = &policy.rules()[i];
        let applies = match ns {
            None => true,
            Some(facts) => rule.namespace_match(facts) == NamespaceMatch::Yes,
        };
        if !applies {
            continue;
        }
        rules.push(rule.name());
        for secret in rule.secrets() {
            if !secrets.contains(&secret.as_str()) {
                secrets.push(secret);
            }
        }
    }
    write(&Explained::Parsed {
        image,
        registry: reference.registry(),
        repository: reference.repository(),
        tag: reference.tag(),
        digest: reference.digest(),
        rules,
        secrets,
    })
}

fn certs_command(args: CertsArgs) -> anyhow::Result<()> {
    let files = certs::CertFiles::in_dir(&args.out_dir);
    let hosts = certs::service_hosts(&args.service, &args.namespace);
    let ca = certs::write_set(&files, &hosts)?;
    eprintln!(
        "wrote {}, {} and {} (names: {})",
        files.ca.display(),
        files.cert.display(),
        files.key.display(),
        hosts.join(", ")
    );
    eprintln!("caBundle for the MutatingWebhookConfiguration:");
    println!("{}", base64::engine::general_purpose::STANDARD.encode(ca));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_positive_duration("0s").is_err());
        assert!(parse_positive_duration("0").is_err());
        assert_eq!(parse_positive_duration("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn labels_parse() {
        assert_eq!(parse_label("a=b"), Ok(("a".into(), "b".into())));
        assert_eq!(parse_label("a="), Ok(("a".into(), "".into())));
        assert!(parse_label("=b").is_err());
        assert!(parse_label("ab").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
