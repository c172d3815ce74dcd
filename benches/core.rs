//! Criterion benches of the synchronous core: image parsing, policy matching
//! and compiling, the mutation plan plus patch, and the whole
//! decode → decide → encode path on a realistic review.
//!
//! Run with `cargo bench --bench core` (add a filter such as `match_image`
//! to run one group). The policies come from `benches/support/mod.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pull_secret_injector::core::decide::decide;
use pull_secret_injector::core::policy::{self, CompiledPolicy, NamespaceFacts};
use pull_secret_injector::core::review::{Object, Review};
use pull_secret_injector::core::{decide as mutate, image, patch};
use support::Shape;

/// Policy sizes the issue asks about.
const SIZES: [usize; 3] = [10, 1_000, 10_000];

fn compiled(rules: usize, shape: Shape) -> CompiledPolicy {
    CompiledPolicy::from_text(&support::policy_yaml(rules, shape)).expect("generated policy")
}

fn image_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("image_parse");
    group.throughput(Throughput::Elements(support::IMAGES.len() as u64));
    group.bench_function("mix16", |b| {
        b.iter(|| {
            for image in support::IMAGES {
                black_box(image::parse(black_box(image)).is_ok());
            }
        })
    });
    group.throughput(Throughput::Elements(1));
    for (name, image) in [
        ("short", "nginx"),
        ("hub_tag", "bitnami/postgresql:16.4.0"),
        (
            "ecr_tag",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments/api:v3.2.1",
        ),
        (
            "ghcr_digest",
            "ghcr.io/acme/exporter@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ),
        ("harbor_port", "harbor.corp.example:5000/team-a/api:1.4.2"),
    ] {
        group.bench_function(name, |b| b.iter(|| image::parse(black_box(image)).is_ok()));
    }
    group.finish();
}

/// (label, registry, repository, hits) looked up in a policy of `rules`.
fn probes(rules: usize, shape: Shape) -> Vec<(&'static str, String, String, bool)> {
    let filler =
        |wildcard| support::filler_image(support::last_filler(rules, shape, wildcard), shape);
    let (exact_reg, exact_repo) = filler(false);
    let (wild_reg, wild_repo) = filler(true);
    let s = |x: &str| x.to_owned();
    vec![
        (
            "hit_tail_exact",
            s("harbor.corp.example"),
            s("team-a/api"),
            true,
        ),
        (
            "hit_tail_wildcard",
            s("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            s("payments/api"),
            true,
        ),
        (
            "hit_tail_label_glob",
            s("europe-west1-docker.pkg.dev"),
            s("acme-prod/images/web"),
            true,
        ),
        ("hit_last_filler_exact", exact_reg, exact_repo, true),
        ("hit_last_filler_wildcard", wild_reg, wild_repo, true),
        (
            "miss_host",
            s("registry.unknown.example"),
            s("team-a/api"),
            false,
        ),
        (
            "miss_repo",
            s("harbor.corp.example"),
            s("team-zz/api"),
            false,
        ),
    ]
}

fn match_image_group(c: &mut Criterion, group_name: &str, shape: Shape) {
    let mut group = c.benchmark_group(group_name);
    for rules in SIZES {
        let policy = compiled(rules, shape);
        for (label, registry, repository, hits) in probes(rules, shape) {
            let mut out = policy::RuleIds::new();
            policy.match_image(&registry, &repository, &mut out);
            // A probe that does not do what its label says measures nothing.
            assert_eq!(
                !out.is_empty(),
                hits,
                "{group_name}/{label}/{rules}: {registry}/{repository} -> {out:?}"
            );
            group.bench_with_input(BenchmarkId::new(label, rules), &rules, |b, _| {
                b.iter(|| {
                    out.clear();
                    policy.match_image(black_box(&registry), black_box(&repository), &mut out);
                    out.len()
                })
            });
        }
    }
    group.finish();
}

fn match_image(c: &mut Criterion) {
    match_image_group(c, "match_image", Shape::Distinct);
    match_image_group(c, "match_image_shared_hosts", Shape::SharedHosts);
}

fn plan_and_patch(c: &mut Criterion) {
    let body = support::fixture_body();
    let review = Review::decode(&body).expect("fixture decodes");
    let Some(Object::Pod(pod)) = &review.request.object else {
        panic!("the fixture's Pod is read with the review");
    };
    let facts = NamespaceFacts {
        name: "team-a",
        labels: None,
    };
    let mut group = c.benchmark_group("plan_patch");
    for (shape_name, shape) in [
        ("distinct", Shape::Distinct),
        ("shared", Shape::SharedHosts),
    ] {
        for rules in SIZES {
            let policy = compiled(rules, shape);
            let plan = mutate::plan(pod, &facts, &policy, mutate::Scope::AllContainers);
            assert_eq!(
                plan.missing[..],
                ["harbor-pull", "dockerhub-creds", "ghcr-acme"],
                "{shape_name}/{rules}"
            );
            group.bench_with_input(BenchmarkId::new(shape_name, rules), &rules, |b, _| {
                b.iter(|| {
                    let plan = mutate::plan(
                        black_box(pod),
                        &facts,
                        &policy,
                        mutate::Scope::AllContainers,
                    );
                    patch::patch(&plan.missing, plan.field_present)
                })
            });
        }
    }
    group.finish();
}

fn core_path(c: &mut Criterion) {
    let body = support::fixture_body();
    let mut group = c.benchmark_group("decode_decide_encode");
    group.throughput(Throughput::Bytes(body.len() as u64));
    for rules in [10, 100, 10_000] {
        let policy = compiled(rules, Shape::Distinct);
        group.bench_with_input(BenchmarkId::from_parameter(rules), &rules, |b, _| {
            b.iter(|| {
                let review = Review::decode(black_box(&body)).expect("decodes");
                let decision = decide(&review.request, &policy, None);
                decision.encode(&review)
            })
        });
    }
    // What the load test's baseline server does per request, for comparison.
    group.bench_function("baseline_value", |b| {
        b.iter(|| {
            let review: serde_json::Value =
                serde_json::from_slice(black_box(&body)).expect("parses");
            let uid = review["request"]["uid"].clone();
            let answer = serde_json::json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": uid, "allowed": true},
            });
            serde_json::to_vec(&answer).expect("serializes")
        })
    });
    // The decode step alone, to split the path's cost.
    group.bench_function("decode_only", |b| {
        b.iter(|| {
            let review = Review::decode(black_box(&body)).expect("decodes");
            match &review.request.object {
                Some(Object::Pod(pod)) => pod.spec.containers.len(),
                _ => 0,
            }
        })
    });
    group.finish();
}

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_compile");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    for (shape_name, shape) in [
        ("distinct", Shape::Distinct),
        ("shared", Shape::SharedHosts),
    ] {
        let text = support::policy_yaml(10_000, shape);
        assert!(
            text.len() <= policy::MAX_POLICY_BYTES,
            "{} bytes",
            text.len()
        );
        group.throughput(Throughput::Bytes(text.len() as u64));
        // The policy in force is replaced, not dropped, when a new one
        // compiles (the old snapshot goes when its last request ends), so
        // the timings leave out dropping the result.
        group.bench_function(BenchmarkId::new("from_text", shape_name), |b| {
            b.iter_with_large_drop(|| CompiledPolicy::from_text(black_box(&text)).expect("valid"))
        });
        let parsed = policy::parse(&text).expect("valid");
        group.bench_function(BenchmarkId::new("compile_only", shape_name), |b| {
            b.iter_batched(
                || parsed.clone(),
                CompiledPolicy::compile,
                BatchSize::LargeInput,
            )
        });
        group.bench_function(BenchmarkId::new("parse_validate_only", shape_name), |b| {
            b.iter_with_large_drop(|| policy::parse(black_box(&text)).expect("valid"))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    image_parse,
    match_image,
    plan_and_patch,
    core_path,
    compile
);

/// One image looked up in a keyring of 20 keys (a Pod with a few pull
/// secrets), next to parsing the image alone.
fn credentials_lookup(c: &mut Criterion) {
    use pull_secret_injector::core::credentials::{ConfigFormat, DockerConfig, Keyring};
    let mut auths: Vec<String> = (0..16)
        .map(|i| format!("\"registry-{i}.corp.example/team-{i}\": {{}}"))
        .collect();
    auths.extend(
        [
            "https://index.docker.io/v1/",
            "*.dkr.ecr.eu-west-1.amazonaws.com",
            "harbor.corp.example:5000",
            "harbor.corp.example/team-a",
        ]
        .map(|k| format!("\"{k}\": {{}}")),
    );
    let text = format!("{{\"auths\": {{{}}}}}", auths.join(","));
    let config =
        DockerConfig::parse(ConfigFormat::DockerConfigJson, text.as_bytes()).expect("valid");
    let ring = Keyring::new([&config]);
    let mut group = c.benchmark_group("credentials_lookup");
    for (name, image) in [
        ("hit_path", "harbor.corp.example/team-a/api:1.4.2"),
        (
            "hit_glob",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/payments/api:v3",
        ),
        ("hub_fallback", "bitnami/postgresql:16.4.0"),
        ("miss", "quay.io/acme/exporter:v1"),
    ] {
        assert_eq!(
            ring.lookup(image).expect("parses").is_empty(),
            name == "miss"
        );
        group.bench_function(name, |b| {
            b.iter(|| ring.lookup(black_box(image)).map(|f| f.len()))
        });
        group.bench_function(format!("{name}_parse_only"), |b| {
            b.iter(|| image::parse(black_box(image)).is_ok())
        });
    }
    group.finish();
}

criterion_group!(keyring_benches, credentials_lookup);
criterion_main!(benches, keyring_benches);
