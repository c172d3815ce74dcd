//! `audit`: which Pods of the cluster lack the secrets the policy gives
//! their images, or list secrets that cannot work (DESIGN §9).
//!
//! Pods are listed in pages of `--chunk-size`; each page is checked and
//! dropped before the next is read, so memory follows the page size. A
//! namespace's Secrets are read when its first Pod that lists a pull secret
//! is met (names, types and pull secrets' `auths` keys only), its labels
//! only when the policy has
//! namespace selectors. The findings themselves come from
//! [`crate::core::audit`]. Exit status: 0 no findings, 1 findings, 2 the
//! audit could not run.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;

use super::args::{load_policy, prefixed};
use crate::core::audit::{self, AuditedPod, Finding, Secrets};
use crate::core::policy::{CompiledPolicy, NamespaceFacts};
use crate::k8s::inventory::{Inventory, InventoryError, Owners, PodItem, PodScope};

/// Exit status when findings were reported.
const EXIT_FINDINGS: u8 = 1;
/// Exit status when the audit could not run.
const EXIT_ERROR: u8 = 2;
/// Progress is shown once a scan has taken this long.
const PROGRESS_AFTER: Duration = Duration::from_secs(2);

/// Flags of `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Policy file (YAML or JSON).
    #[arg(
        long,
        env = "PSI_POLICY",
        conflicts_with = "policy_configmap",
        required_unless_present = "policy_configmap"
    )]
    policy: Option<PathBuf>,
    /// Policy ConfigMap as NAMESPACE/NAME (key `policy.yaml`), read once.
    #[arg(long, env = "PSI_POLICY_CONFIGMAP", value_name = "NAMESPACE/NAME")]
    policy_configmap: Option<String>,
    /// Audit this namespace [default: the kubeconfig's current namespace].
    #[arg(
        short = 'n',
        long,
        env = "PSI_NAMESPACE",
        conflicts_with = "all_namespaces"
    )]
    namespace: Option<String>,
    /// Audit every namespace.
    #[arg(short = 'A', long, env = "PSI_ALL_NAMESPACES")]
    all_namespaces: bool,
    /// Output format: aligned columns with a summary line, or one JSON
    /// object per finding.
    #[arg(
        short = 'o',
        long,
        env = "PSI_OUTPUT",
        value_enum,
        default_value = "table"
    )]
    output: Output,
    /// Pods (and Secrets) read per API request; memory follows it.
    #[arg(long, env = "PSI_CHUNK_SIZE", default_value_t = 500, value_parser = parse_chunk_size)]
    chunk_size: u32,
}

/// How findings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// kubectl-like columns (with the owning workload) and a summary line.
    Table,
    /// One JSON object per finding and line.
    Json,
}

fn parse_chunk_size(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a positive number of objects")),
    }
}

/// Where the policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PolicyFrom {
    File(PathBuf),
    ConfigMap { namespace: String, name: String },
}

/// `audit`, validated.
#[derive(Debug)]
struct AuditConfig {
    policy: PolicyFrom,
    /// `None`: the kubeconfig's current namespace.
    scope: Option<PodScope>,
    output: Output,
    chunk_size: u32,
}

impl AuditConfig {
    fn from_args(args: AuditArgs) -> anyhow::Result<Self> {
        let AuditArgs {
            policy,
            policy_configmap,
            namespace,
            all_namespaces,
            output,
            chunk_size,
        } = args;
        let policy = match (policy, policy_configmap) {
            (Some(path), None) => PolicyFrom::File(path),
            (None, Some(spec)) => {
                let Some((namespace, name)) = spec.split_once('/').filter(|(ns, name)| {
                    is_dns_label(ns) && !name.is_empty() && !name.contains('/')
                }) else {
                    bail!("--policy-configmap must be NAMESPACE/NAME, got {spec:?}");
                };
                PolicyFrom::ConfigMap {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                }
            }
            (None, None) => {
                bail!("no policy: give --policy FILE or --policy-configmap NAMESPACE/NAME")
            }
            (Some(_), Some(_)) => bail!("give only one of --policy and --policy-configmap"),
        };
        let scope = match (namespace, all_namespaces) {
            (Some(ns), _) if !is_dns_label(&ns) => {
                bail!("--namespace {ns:?} is not a valid namespace name")
            }
            (Some(ns), _) => Some(PodScope::Namespace(ns)),
            (None, true) => Some(PodScope::AllNamespaces),
            (None, false) => None,
        };
        Ok(AuditConfig {
            policy,
            scope,
            output,
            chunk_size,
        })
    }
}

/// A namespace name: a DNS-1123 label.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Runs `audit`: exit 0 without findings, 1 with, 2 when it could not run.
pub fn run(args: AuditArgs) -> ExitCode {
    let result = AuditConfig::from_args(args).and_then(|config| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(scan(config))
    });
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(EXIT_FINDINGS),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// An inventory error, with what to do about a denial.
fn explain(err: InventoryError) -> anyhow::Error {
    match err {
        InventoryError::Forbidden { .. } => anyhow!(
            "{err}\nhint: audit reads pods, secrets, replicasets and jobs (get, list), namespaces (get, for selector rules) and the policy ConfigMap (get); bind the ClusterRole pull-secret-injector-audit (manifests/audit) to this user or ServiceAccount"
        ),
        other => anyhow!(other),
    }
}

/// The namespace being scanned: its labels (when the policy needs them)
/// and Secrets (read when first needed).
struct Namespace {
    name: String,
    labels: Option<BTreeMap<String, String>>,
    secrets: Option<Secrets>,
}

/// Scans and prints; returns the number of findings.
async fn scan(config: AuditConfig) -> anyhow::Result<usize> {
    let kubeconfig = kube::Config::infer().await.context(
        "cannot find a cluster to audit: no usable kubeconfig (KUBECONFIG, ~/.kube/config) and not running in a cluster",
    )?;
    let scope = config
        .scope
        .clone()
        .unwrap_or_else(|| PodScope::Namespace(kubeconfig.default_namespace.clone()));
    let client = kube::Client::try_from(kubeconfig).context("cannot build a Kubernetes client")?;
    let inventory = Inventory::new(client.clone(), config.chunk_size);
    let policy = read_policy(&config.policy, &inventory).await?;
    let mut owners = Owners::new(client);

    let mut printer = Printer::new(config.output, scope == PodScope::AllNamespaces);
    let mut progress = Progress::new();
    let mut namespace: Option<Namespace> = None;
    let mut token: Option<String> = None;
    loop {
        let page = inventory
            .pods(&scope, token.as_deref())
            .await
            .map_err(explain)?;
        let list = page.read()?;
        for pod in &list.items {
            let ns_name = pod.metadata.namespace.as_ref();
            if namespace.as_ref().is_none_or(|n| n.name != ns_name) {
                let labels = if policy.uses_selectors() {
                    inventory.namespace_labels(ns_name).await.map_err(explain)?
                } else {
                    None
                };
                namespace = Some(Namespace {
                    name: ns_name.to_owned(),
                    labels,
                    secrets: None,
                });
                printer.namespaces += 1;
            }
            let Some(ns) = namespace.as_mut() else {
                continue;
            };
            let found = check(&policy, &inventory, ns, pod).await?;
            printer.pods += 1;
            if found.is_empty() {
                continue;
            }
            let workload = if config.output == Output::Table {
                owners
                    .workload(
                        ns_name,
                        pod.metadata.owner_references.as_deref().unwrap_or(&[]),
                    )
                    .await
                    .map_err(explain)?
            } else {
                None
            };
            printer.pod(ns_name, &pod.metadata.name, workload, found)?;
        }
        printer.flush()?;
        progress.update(printer.pods, printer.namespaces);
        match list.continue_token() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    progress.finish();
    printer.finish(&scope)
}

/// The findings of one Pod, reading its namespace's Secrets if it lists
/// any pull secret and they have not been read yet.
async fn check(
    policy: &CompiledPolicy,
    inventory: &Inventory,
    ns: &mut Namespace,
    pod: &PodItem<'_>,
) -> anyhow::Result<Vec<Finding>> {
    let lists_secrets = pod
        .spec
        .image_pull_secrets
        .iter()
        .flatten()
        .any(|r| r.name.as_deref().is_some_and(|n| !n.is_empty()));
    if lists_secrets && ns.secrets.is_none() {
        ns.secrets = Some(inventory.secrets(&ns.name).await.map_err(explain)?);
    }
    let empty = Secrets::new();
    let facts = NamespaceFacts {
        name: &ns.name,
        labels: ns.labels.as_ref(),
    };
    let audited = AuditedPod {
        mirror: pod.metadata.annotations.mirror,
        spec: &pod.spec,
    };
    Ok(audit::findings(
        policy,
        &facts,
        &audited,
        ns.secrets.as_ref().unwrap_or(&empty),
    ))
}

async fn read_policy(from: &PolicyFrom, inventory: &Inventory) -> anyhow::Result<CompiledPolicy> {
    match from {
        PolicyFrom::File(path) => load_policy(path),
        PolicyFrom::ConfigMap { namespace, name } => {
            let text = inventory
                .policy_text(namespace, name)
                .await
                .map_err(explain)?
                .with_context(|| {
                    format!(
                        "configmap {namespace}/{name} does not exist or has no key {:?}",
                        crate::k8s::configmap::POLICY_KEY
                    )
                })?;
            let origin = PathBuf::from(format!("configmap {namespace}/{name}"));
            CompiledPolicy::from_text(&text).map_err(|errors| {
                anyhow!(
                    "invalid policy in configmap {namespace}/{name}:\n{}",
                    prefixed(&errors, &origin)
                )
            })
        }
    }
}

/// One `-o json` line, fields in the documented order.
#[derive(Serialize)]
struct JsonFinding<'a> {
    namespace: &'a str,
    pod: &'a str,
    container: &'a str,
    image: &'a str,
    finding: &'a str,
    secret: Option<&'a str>,
    detail: &'a str,
}

/// A table row, kept until the widths are known.
struct Row {
    namespace: String,
    pod: String,
    workload: String,
    finding: Finding,
}

/// Writes findings as they come (JSON) or at the end (table), and counts.
struct Printer {
    output: Output,
    all_namespaces: bool,
    out: std::io::BufWriter<std::io::Stdout>,
    rows: Vec<Row>,
    findings: usize,
    flagged_pods: usize,
    pods: usize,
    namespaces: usize,
}

impl Printer {
    fn new(output: Output, all_namespaces: bool) -> Self {
        Printer {
            output,
            all_namespaces,
            out: std::io::BufWriter::new(std::io::stdout()),
            rows: Vec::new(),
            findings: 0,
            flagged_pods: 0,
            pods: 0,
            namespaces: 0,
        }
    }

    fn pod(
        &mut self,
        namespace: &str,
        pod: &str,
        workload: Option<String>,
        found: Vec<Finding>,
    ) -> anyhow::Result<()> {
        self.flagged_pods += 1;
        self.findings += found.len();
        match self.output {
            Output::Json => {
                for f in &found {
                    let line = JsonFinding {
                        namespace,
                        pod,
                        container: &f.container,
                        image: &f.image,
                        finding: f.kind.as_str(),
                        secret: f.secret.as_deref(),
                        detail: &f.detail,
                    };
                    serde_json::to_writer(&mut self.out, &line)?;
                    self.out.write_all(b"\n")?;
                }
            }
            Output::Table => {
                let workload = workload.unwrap_or_else(|| "<none>".to_owned());
                self.rows.extend(found.into_iter().map(|finding| Row {
                    namespace: namespace.to_owned(),
                    pod: pod.to_owned(),
                    workload: workload.clone(),
                    finding,
                }));
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.out.flush().context("cannot write to stdout")
    }

    /// Prints the table and summary (table output); returns the number of
    /// findings.
    fn finish(mut self, scope: &PodScope) -> anyhow::Result<usize> {
        if self.output == Output::Table {
            let mut table: Vec<Vec<&str>> = Vec::with_capacity(self.rows.len() + 1);
            let mut header = vec![
                "POD",
                "WORKLOAD",
                "CONTAINER",
                "IMAGE",
                "FINDING",
                "SECRET",
                "DETAIL",
            ];
            if self.all_namespaces {
                header.insert(0, "NAMESPACE");
            }
            table.push(header);
            for row in &self.rows {
                let f = &row.finding;
                let mut cells = vec![
                    row.pod.as_str(),
                    row.workload.as_str(),
                    f.container.as_str(),
                    f.image.as_str(),
                    f.kind.as_str(),
                    f.secret.as_deref().unwrap_or("<none>"),
                    f.detail.as_str(),
                ];
                if self.all_namespaces {
                    cells.insert(0, row.namespace.as_str());
                }
                table.push(cells);
            }
            if !self.rows.is_empty() {
                write_table(&mut self.out, &table)?;
            }
            let place = match scope {
                PodScope::AllNamespaces => {
                    format!("{} namespace{}", self.namespaces, plural(self.namespaces))
                }
                PodScope::Namespace(ns) => format!("namespace {ns}"),
            };
            writeln!(
                self.out,
                "{} finding{} in {} of {} pod{} ({place})",
                self.findings,
                plural(self.findings),
                self.flagged_pods,
                self.pods,
                plural(self.pods),
            )?;
        }
        self.flush()?;
        Ok(self.findings)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Columns padded to their widest cell and three spaces apart, as kubectl
/// prints them; the last column is not padded.
fn write_table(out: &mut impl std::io::Write, rows: &[Vec<&str>]) -> std::io::Result<()> {
    let columns = rows.first().map_or(0, Vec::len);
    let mut widths = vec![0; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// "scanned N pods" on stderr, once a scan takes a while, when stderr is a
/// terminal (never in pipes, files or CronJob logs).
struct Progress {
    started: Instant,
    terminal: bool,
    shown: bool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    fn update(&mut self, pods: usize, namespaces: usize) {
        if self.terminal && self.started.elapsed() >= PROGRESS_AFTER {
            eprint!(
                "\rscanned {pods} pod{} in {namespaces} namespace{}…",
                plural(pods),
                plural(namespaces)
            );
            self.shown = true;
        }
    }

    /// Clears the progress line.
    fn finish(&self) {
        if self.shown {
            eprint!("\r\x1b[K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_are_aligned_three_spaces_apart() {
        let mut out = Vec::new();
        write_table(
            &mut out,
            &[
                vec!["POD", "FINDING", "DETAIL"],
                vec!["api-1", "x", "long detail"],
            ],
        )
        .expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "POD     FINDING   DETAIL\napi-1   x         long detail\n"
        );
    }

    #[test]
    fn namespaces_are_dns_labels() {
        for ok in ["default", "team-a", "a1"] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a/b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
