//! Table tests: wanted set × observed set → actions.

use std::collections::BTreeMap;

use super::*;
use crate::core::credentials::ConfigFormat;

const POLICY: &str = r#"
secrets:
  - {name: hub, from: ops/hub-source}
  - {name: quay, from: ops/quay-source}
rules:
  - name: hub
    registries: [docker.io]
    secrets: [hub, own]
    namespaces: {exclude: [sandbox]}
  - name: quay
    registries: [quay.io]
    secrets: [quay]
    namespaces: {selector: {matchLabels: {quay: "yes"}}}
"#;

const JSON: &str = "kubernetes.io/dockerconfigjson";
const OPAQUE: &str = "Opaque";
const HUB: &str = "ops/hub-source";
const QUAY: &str = "ops/quay-source";

/// A copy as a test writes it: managed, source annotation, type, digest.
type CopyRow = (bool, Option<String>, String, u64);

/// A source as a test writes it: type, digest, keys (`None`: unreadable).
type SourceRow = (String, u64, Option<DockerConfig>);

/// Keys covering both registries of [`POLICY`].
const BOTH_KEYS: &str = r#"{"auths": {"https://index.docker.io/v1/": {}, "quay.io": {}}}"#;

fn keys(json: &str) -> DockerConfig {
    DockerConfig::parse(ConfigFormat::DockerConfigJson, json.as_bytes()).expect("docker config")
}

/// What a test observes, written out as plain maps.
#[derive(Default)]
struct World {
    sources: BTreeMap<(String, String), Option<SourceRow>>,
    copies: BTreeMap<(String, String), CopyRow>,
}

impl World {
    fn source(mut self, ns: &str, name: &str, type_: &str, digest: u64) -> Self {
        self.sources.insert(
            (ns.into(), name.into()),
            Some((type_.into(), digest, Some(keys(BOTH_KEYS)))),
        );
        self
    }
    /// A pull-secret source whose content reads as `config`.
    fn source_keys(mut self, ns: &str, name: &str, config: Option<DockerConfig>) -> Self {
        self.sources
            .insert((ns.into(), name.into()), Some((JSON.into(), 1, config)));
        self
    }
    fn missing(mut self, ns: &str, name: &str) -> Self {
        self.sources.insert((ns.into(), name.into()), None);
        self
    }
    /// Both sources present, digest 1 (hub) and 2 (quay).
    fn sources() -> Self {
        World::default()
            .source("ops", "hub-source", JSON, 1)
            .source("ops", "quay-source", JSON, 2)
    }
    fn managed(mut self, ns: &str, name: &str, source: &str, type_: &str, digest: u64) -> Self {
        self.copies.insert(
            (ns.into(), name.into()),
            (true, Some(source.into()), type_.into(), digest),
        );
        self
    }
    fn unmanaged(mut self, ns: &str, name: &str) -> Self {
        self.copies
            .insert((ns.into(), name.into()), (false, None, JSON.into(), 1));
        self
    }
}

impl Observed for World {
    fn source(&self, namespace: &str, name: &str) -> Source<'_> {
        match self.sources.get(&(namespace.into(), name.into())) {
            None => Source::Unknown,
            Some(None) => Source::Missing,
            Some(Some((type_, digest, keys))) => Source::Present {
                type_,
                digest: *digest,
                keys: keys.as_ref(),
            },
        }
    }
    fn copy(&self, namespace: &str, name: &str) -> Option<Copy<'_>> {
        self.copies
            .get(&(namespace.into(), name.into()))
            .map(|(managed, source, type_, digest)| Copy {
                managed: *managed,
                source: source.as_deref(),
                type_,
                digest: *digest,
            })
    }
    fn for_each_managed(&self, f: &mut dyn FnMut(&str, &str)) {
        for ((ns, name), (managed, ..)) in &self.copies {
            if *managed {
                f(ns, name);
            }
        }
    }
}

/// Namespaces as (name, labels, active).
type Ns = (&'static str, &'static [(&'static str, &'static str)], bool);

const CLUSTER: &[Ns] = &[
    ("default", &[], true),
    ("team-a", &[("quay", "yes")], true),
    ("sandbox", &[("quay", "yes")], true),
    ("ops", &[], true),
    ("kube-system", &[], true),
    ("pull-secret-injector", &[], true),
    (
        "opted-out",
        &[("pull-secret-injector.io/inject", "false")],
        true,
    ),
    ("leaving", &[], false),
];

fn run(world: &World, namespaces: &[Ns]) -> Plan {
    let policy = CompiledPolicy::from_text(POLICY).expect("valid");
    let labels: Vec<BTreeMap<String, String>> = namespaces
        .iter()
        .map(|(_, l, _)| {
            l.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        })
        .collect();
    let views: Vec<Namespace<'_>> = namespaces
        .iter()
        .zip(&labels)
        .map(|((name, _, active), labels)| Namespace {
            name,
            labels,
            active: *active,
        })
        .collect();
    plan(&policy, &views, "pull-secret-injector", world)
}

fn create(ns: &str, s: &str) -> Action {
    Action::Create {
        namespace: ns.into(),
        secret: s.into(),
    }
}
fn update(ns: &str, s: &str) -> Action {
    Action::Update {
        namespace: ns.into(),
        secret: s.into(),
    }
}
fn replace(ns: &str, s: &str) -> Action {
    Action::Replace {
        namespace: ns.into(),
        secret: s.into(),
    }
}
fn delete(ns: &str, s: &str) -> Action {
    Action::Delete {
        namespace: ns.into(),
        name: s.into(),
    }
}
fn conflict(ns: &str, s: &str) -> Action {
    Action::Conflict {
        namespace: ns.into(),
        secret: s.into(),
    }
}

#[test]
fn copies_go_exactly_where_the_webhook_injects() {
    let plan = run(&World::sources(), CLUSTER);
    // hub: every namespace but sandbox (rule), ops (source), kube-system,
    // the install namespace, opted-out and the terminating one. quay: only
    // the labelled namespaces (sandbox is not excluded by the quay rule).
    // "own" is not managed: never written.
    assert_eq!(
        plan.actions,
        [
            create("default", "hub"),
            create("team-a", "hub"),
            create("team-a", "quay"),
            create("sandbox", "quay"),
        ]
    );
    assert_eq!(plan.status["hub"].wanted, 2);
    assert_eq!(plan.status["hub"].pending(), 2);
    assert_eq!(plan.status["quay"].digest, Some(2));
}

/// (what the test shows, observed world, expected actions).
fn cases() -> Vec<(&'static str, World, Vec<Action>)> {
    vec![
        (
            "in sync: nothing to do",
            World::sources()
                .managed("default", "hub", HUB, JSON, 1)
                .managed("team-a", "hub", HUB, JSON, 1)
                .managed("team-a", "quay", QUAY, JSON, 2)
                .managed("sandbox", "quay", QUAY, JSON, 2),
            vec![],
        ),
        (
            "source rotated / copy tampered with: restored",
            World::sources()
                .managed("default", "hub", HUB, JSON, 7)
                .managed("team-a", "hub", HUB, JSON, 1)
                .managed("team-a", "quay", "ops/elsewhere", JSON, 2)
                .managed("sandbox", "quay", QUAY, JSON, 2),
            vec![update("default", "hub"), update("team-a", "quay")],
        ),
        (
            "copy of another type: replaced (types are immutable)",
            World::sources()
                .managed("default", "hub", HUB, "kubernetes.io/dockercfg", 1)
                .managed("team-a", "hub", HUB, JSON, 1)
                .managed("team-a", "quay", QUAY, JSON, 2)
                .managed("sandbox", "quay", QUAY, JSON, 2),
            vec![replace("default", "hub")],
        ),
        (
            "an unmanaged Secret in the way: conflict, never touched",
            World::sources()
                .unmanaged("default", "hub")
                .managed("team-a", "hub", HUB, JSON, 1)
                .managed("team-a", "quay", QUAY, JSON, 2)
                .managed("sandbox", "quay", QUAY, JSON, 2),
            vec![conflict("default", "hub")],
        ),
        (
            "unwanted managed copies are pruned, unmanaged ones never",
            World::sources()
                .managed("default", "hub", HUB, JSON, 1)
                .managed("team-a", "hub", HUB, JSON, 1)
                .managed("team-a", "quay", QUAY, JSON, 2)
                .managed("sandbox", "quay", QUAY, JSON, 2)
                // excluded by the rule, opted out, kube-system, install ns,
                // the source's namespace, quay without the label:
                .managed("sandbox", "hub", HUB, JSON, 1)
                .managed("opted-out", "hub", HUB, JSON, 1)
                .managed("kube-system", "hub", HUB, JSON, 1)
                .managed("pull-secret-injector", "hub", HUB, JSON, 1)
                .managed("ops", "hub", HUB, JSON, 1)
                .managed("default", "quay", QUAY, JSON, 2)
                .unmanaged("opted-out", "quay")
                // not in secrets: any more, and a terminating namespace:
                .managed("default", "removed", "ops/removed", JSON, 9)
                .managed("leaving", "hub", HUB, JSON, 1),
            vec![
                delete("kube-system", "hub"),
                delete("ops", "hub"),
                delete("opted-out", "hub"),
                delete("pull-secret-injector", "hub"),
                delete("sandbox", "hub"),
                delete("default", "quay"),
                delete("default", "removed"),
            ],
        ),
        (
            "source missing: reported, no copy created, changed or deleted",
            World::sources()
                .missing("ops", "hub-source")
                .managed("default", "hub", HUB, JSON, 7)
                .managed("sandbox", "hub", HUB, JSON, 1)
                .managed("team-a", "quay", QUAY, JSON, 2)
                .managed("sandbox", "quay", QUAY, JSON, 2),
            vec![Action::SourceInvalid {
                secret: "hub".into(),
                source: HUB.into(),
                problem: SourceProblem::Missing,
            }],
        ),
        (
            "source of the wrong type: same",
            World::sources()
                .source("ops", "quay-source", OPAQUE, 2)
                .managed("default", "hub", HUB, JSON, 1)
                .managed("team-a", "hub", HUB, JSON, 1)
                .managed("default", "quay", QUAY, JSON, 2),
            vec![Action::SourceInvalid {
                secret: "quay".into(),
                source: QUAY.into(),
                problem: SourceProblem::WrongType(OPAQUE.into()),
            }],
        ),
        (
            "source not observed yet: nothing at all for it",
            World::default()
                .source("ops", "hub-source", JSON, 1)
                .managed("default", "hub", HUB, JSON, 1)
                .managed("team-a", "hub", HUB, JSON, 1)
                .managed("default", "quay", QUAY, JSON, 5),
            vec![],
        ),
    ]
}

#[test]
fn observed_states_lead_to_these_actions() {
    for (what, world, expected) in cases() {
        assert_eq!(run(&world, CLUSTER).actions, expected, "{what}");
    }
}

#[test]
fn relabelling_and_deleting_namespaces_prune_or_leave_copies() {
    let world = World::sources()
        .managed("default", "hub", HUB, JSON, 1)
        .managed("team-a", "hub", HUB, JSON, 1)
        .managed("team-a", "quay", QUAY, JSON, 2);
    // team-a loses its quay label: its quay copy goes.
    let relabelled: &[Ns] = &[("default", &[], true), ("team-a", &[], true)];
    assert_eq!(run(&world, relabelled).actions, [delete("team-a", "quay")]);
    // team-a opts out: both its copies go.
    let opted: &[Ns] = &[
        ("default", &[], true),
        (
            "team-a",
            &[("pull-secret-injector.io/inject", "false")],
            true,
        ),
    ];
    assert_eq!(
        run(&world, opted).actions,
        [delete("team-a", "hub"), delete("team-a", "quay")]
    );
    // team-a is being deleted, or already gone: its copies are left to it.
    let leaving: &[Ns] = &[
        ("default", &[], true),
        ("team-a", &[("quay", "yes")], false),
    ];
    assert!(run(&world, leaving).actions.is_empty());
    let gone: &[Ns] = &[("default", &[], true)];
    assert!(run(&world, gone).actions.is_empty());
}

#[test]
fn a_policy_edit_prunes_what_it_no_longer_wants() {
    let policy = CompiledPolicy::from_text(
        "secrets:\n- {name: hub, from: ops/hub-source}\nrules:\n- {name: hub, registries: [docker.io], secrets: [hub], namespaces: {include: [team-*]}}\n",
    )
    .expect("valid");
    let world = World::sources()
        .managed("default", "hub", HUB, JSON, 1)
        .managed("team-a", "hub", HUB, JSON, 1);
    let labels = BTreeMap::new();
    let ns = |name| Namespace {
        name,
        labels: &labels,
        active: true,
    };
    let plan = plan(
        &policy,
        &[ns("default"), ns("team-a"), ns("team-b")],
        "pull-secret-injector",
        &world,
    );
    assert_eq!(
        plan.actions,
        [create("team-b", "hub"), delete("default", "hub")]
    );
    assert_eq!(plan.status["hub"].synced, 1);
}

#[test]
fn status_counts_synced_conflicts_and_pending() {
    let world = World::sources()
        .unmanaged("default", "hub")
        .managed("team-a", "hub", HUB, JSON, 1)
        .managed("team-a", "quay", QUAY, JSON, 9);
    let plan = run(&world, CLUSTER);
    let hub = &plan.status["hub"];
    assert_eq!(
        (hub.wanted, hub.synced, hub.conflicts, hub.pending()),
        (2, 1, 1, 0)
    );
    let quay = &plan.status["quay"];
    assert_eq!((quay.wanted, quay.synced, quay.pending()), (2, 0, 2));
    let missing = run(&World::sources().missing("ops", "hub-source"), CLUSTER);
    assert!(missing.status["hub"].source_invalid);
    assert_eq!(missing.status["hub"].wanted, 0);
}

#[test]
fn a_policy_without_managed_secrets_writes_nothing_but_prunes_leftovers() {
    let policy = CompiledPolicy::from_text(
        "rules:\n- {name: hub, registries: [docker.io], secrets: [hub]}\n",
    )
    .expect("valid");
    let world = World::default().managed("default", "hub", HUB, JSON, 1);
    let labels = BTreeMap::new();
    let ns = [Namespace {
        name: "default",
        labels: &labels,
        active: true,
    }];
    assert_eq!(
        plan(&policy, &ns, "pull-secret-injector", &world).actions,
        [delete("default", "hub")]
    );
}

#[test]
fn digests_cover_type_keys_and_values_unambiguously() {
    let h = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
    let d = |t: &str, data: &[(&str, &[u8])]| content_digest(&h, t, data.iter().copied());
    let base = d(JSON, &[(".dockerconfigjson", b"{}")]);
    assert_eq!(base, d(JSON, &[(".dockerconfigjson", b"{}")]));
    assert_ne!(base, d(OPAQUE, &[(".dockerconfigjson", b"{}")]));
    assert_ne!(base, d(JSON, &[(".dockerconfigjson", b"{ }")]));
    assert_ne!(base, d(JSON, &[(".dockercfg", b"{}")]));
    assert_ne!(d(JSON, &[("ab", b"c")]), d(JSON, &[("a", b"bc")]));
    assert_ne!(base, d(JSON, &[(".dockerconfigjson", b"{}"), ("x", b"")]));
}

const COVERAGE_POLICY: &str = r#"
secrets:
  - {name: creds, from: ops/creds-source}
rules:
  - name: corp
    registries: [harbor.corp.example, "*.build.example", reg.io:5000]
    secrets: [creds]
  - name: hub
    registries: [docker.io]
    secrets: [creds]
  - name: other
    registries: [quay.io]
    secrets: [unmanaged]
"#;

/// (what the test shows, source's auths keys, uncovered (rule, host)).
type CoverageCase = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

fn finding(rule: &str, host: &str, unreadable: bool) -> Uncovered {
    Uncovered {
        secret: "creds".into(),
        source: "ops/creds-source".into(),
        rule: rule.into(),
        host: host.into(),
        unreadable,
    }
}

#[test]
fn registries_without_keys_are_reported_and_copies_still_made() {
    let policy = CompiledPolicy::from_text(COVERAGE_POLICY).expect("valid");
    let managed = policy.managed("creds").expect("managed");
    let cases: [CoverageCase; 6] = [
        (
            "every registry covered: exact host, wildcard, port, docker.io via index.docker.io",
            r#"{"auths": {"harbor.corp.example": {}, "ci.build.example": {}, "reg.io:5000": {}, "https://index.docker.io/v1/": {}}}"#,
            &[],
        ),
        (
            "uncovered exact host; quay.io is another secret's rule",
            r#"{"auths": {"ci.build.example": {}, "reg.io:5000": {}, "index.docker.io": {}}}"#,
            &[("corp", "harbor.corp.example")],
        ),
        (
            "wildcard: a key of another domain does not cover it",
            r#"{"auths": {"harbor.corp.example": {}, "ci.other.example": {}, "reg.io:5000": {}, "index.docker.io": {}}}"#,
            &[("corp", "*.build.example")],
        ),
        (
            "port mismatch: reg.io and reg.io:443 do not cover reg.io:5000",
            r#"{"auths": {"harbor.corp.example": {}, "ci.build.example": {}, "reg.io": {}, "reg.io:443": {}, "index.docker.io": {}}}"#,
            &[("corp", "reg.io:5000")],
        ),
        (
            "a docker.io key covers docker.io as well; a path-scoped key covers no host",
            r#"{"auths": {"harbor.corp.example/team-a": {}, "ci.build.example": {}, "reg.io:5000": {}, "docker.io": {}}}"#,
            &[("corp", "harbor.corp.example")],
        ),
        (
            "no keys at all",
            r#"{"auths": {}}"#,
            &[
                ("corp", "harbor.corp.example"),
                ("corp", "*.build.example"),
                ("corp", "reg.io:5000"),
                ("hub", "docker.io"),
            ],
        ),
    ];
    for (what, json, expected) in cases {
        let config = keys(json);
        let expected: Vec<Uncovered> = expected
            .iter()
            .map(|(rule, host)| finding(rule, host, false))
            .collect();
        assert_eq!(
            uncovered(&policy, managed, Some(&config)),
            expected,
            "{what}"
        );
    }
}

#[test]
fn coverage_is_part_of_the_plan_only_for_valid_sources() {
    let policy = CompiledPolicy::from_text(COVERAGE_POLICY).expect("valid");
    let labels = BTreeMap::new();
    let namespaces = [Namespace {
        name: "team-a",
        labels: &labels,
        active: true,
    }];
    let run = |world: &World| plan(&policy, &namespaces, "pull-secret-injector", world);
    let only_corp =
        keys(r#"{"auths": {"harbor.corp.example": {}, "a.build.example": {}, "reg.io:5000": {}}}"#);
    let plan_ = run(&World::default().source_keys("ops", "creds-source", Some(only_corp)));
    assert_eq!(plan_.uncovered, [finding("hub", "docker.io", false)]);
    assert_eq!(
        plan_.actions,
        [create("team-a", "creds")],
        "copies still made"
    );

    let plan_ = run(&World::default().source_keys("ops", "creds-source", None));
    assert_eq!(plan_.uncovered.len(), 4);
    assert!(plan_.uncovered.iter().all(|u| u.unreadable));
    assert_eq!(plan_.actions, [create("team-a", "creds")]);

    for world in [
        World::default().missing("ops", "creds-source"),
        World::default().source("ops", "creds-source", OPAQUE, 1),
        World::default(),
    ] {
        assert_eq!(run(&world).uncovered, []);
    }
}

/// The incremental form agrees with the whole pass: per namespace, the
/// same actions (the sources' own actions aside) and counts that add up
/// to the status.
#[test]
fn planning_namespace_by_namespace_agrees_with_the_whole_pass() {
    let policy = CompiledPolicy::from_text(POLICY).expect("valid");
    let labels: Vec<BTreeMap<String, String>> = CLUSTER
        .iter()
        .map(|(_, l, _)| {
            l.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        })
        .collect();
    let views: Vec<Namespace<'_>> = CLUSTER
        .iter()
        .zip(&labels)
        .map(|((name, _, active), labels)| Namespace {
            name,
            labels,
            active: *active,
        })
        .collect();
    let mut worlds = cases();
    worlds.push((
        "an orphan of an unmanaged name, a conflict and a stale copy",
        World::sources()
            .managed("team-a", "gone", HUB, JSON, 1)
            .unmanaged("default", "hub")
            .managed("team-a", "quay", QUAY, JSON, 9),
        vec![],
    ));
    for (what, world, _) in worlds {
        let whole = plan(&policy, &views, "pull-secret-injector", &world);
        let sources = judge_sources(&policy, &world);
        let mut actions = sources.invalid.clone();
        let mut counts = vec![Counts::default(); sources.names().len()];
        for ns in &views {
            let part = plan_namespace(&policy, &sources, ns, "pull-secret-injector", &world);
            actions.extend(part.actions);
            for (total, c) in counts.iter_mut().zip(part.counts) {
                *total = *total + c;
            }
        }
        let sorted = |mut a: Vec<Action>| {
            a.sort_by_key(|a| format!("{a:?}"));
            a
        };
        assert_eq!(sorted(actions), sorted(whole.actions), "{what}");
        assert_eq!(sources.status(&counts), whole.status, "{what}");
        assert_eq!(sources.uncovered, whole.uncovered, "{what}");
    }
}

#[test]
fn counts_add_and_subtract() {
    let a = Counts {
        wanted: 3,
        synced: 2,
        conflicts: 1,
    };
    let b = Counts {
        wanted: 1,
        synced: 1,
        conflicts: 0,
    };
    assert_eq!(a + b - b, a);
    assert_eq!(b - a, Counts::default());
}
