//! A generated 10,000-rule policy with mixed exact, glob and IPv6 hosts,
//! checked against an independent naive linear scan.

use std::net::Ipv6Addr;

use crate::core::policy::{CompiledPolicy, RuleIds, parse};

/// Deterministic xorshift generator, so failures reproduce.
pub(super) struct Rng(pub u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn host_pattern(rng: &mut Rng) -> String {
    let (a, b) = (rng.below(40), rng.below(5));
    let port = rng.pick(&["", "", "", ":5000", ":5001"]);
    match rng.below(16) {
        0..=5 => format!("reg{a}.corp{b}.example{port}"),
        6 => format!("REG{a}.Corp{b}.example{port}"),
        7 => format!("*.corp{b}.example{port}"),
        8 => format!("ecr-*.corp{b}.example"),
        9 => format!("reg?.corp{b}.example{port}"),
        10 => format!("*.*.corp{b}.example"),
        11 => format!("reg{a}.*.example{port}"),
        12 => rng
            .pick(&[
                "*.dkr.ecr.*.amazonaws.com",
                "*-docker.pkg.dev",
                "*.azurecr.io",
            ])
            .into(),
        13 => rng
            .pick(&["docker.io", "index.docker.io", "ghcr.io", "localhost:5000"])
            .into(),
        14 => rng.pick(&["*.*", "*.*.*", "*", "*:5000"]).into(),
        _ => format!("[fe80::{a:x}]{port}"),
    }
}

fn repository_glob(rng: &mut Rng) -> String {
    let c = rng.below(10);
    match rng.below(5) {
        0 => format!("team-{c}/**"),
        1 => format!("*/app-{c}"),
        2 => "library/*".into(),
        3 => "**/api".into(),
        _ => format!("team-{c}/*"),
    }
}

/// YAML text of a policy with `n` generated rules, one flow mapping per
/// line (10,000 rules in block style would exceed the 1 MiB limit).
pub(super) fn generated_policy(n: usize, rng: &mut Rng) -> String {
    let mut text = String::from("# generated\nrules:\n");
    for i in 0..n {
        let registries: Vec<String> = (0..1 + rng.below(3)).map(|_| host_pattern(rng)).collect();
        text.push_str(&format!("- {{name: r{i}, registries: {registries:?}, "));
        if rng.below(10) < 4 {
            let repos: Vec<String> = (0..1 + rng.below(2))
                .map(|_| repository_glob(rng))
                .collect();
            text.push_str(&format!("repositories: {repos:?}, "));
        }
        text.push_str(&format!("secrets: [s{}]}}\n", i % 7));
    }
    text
}

fn image(rng: &mut Rng) -> (String, String) {
    let (a, b, c) = (rng.below(45), rng.below(6), rng.below(12));
    let port = rng.pick(&["", "", ":5000", ":5001", ":443"]);
    let registry = match rng.below(14) {
        0..=4 => format!("reg{a}.corp{b}.example{port}"),
        5 => format!("Reg{a}.CORP{b}.example{port}"),
        6 => format!("ecr-{a}.corp{b}.example{port}"),
        7 => format!("x.y.corp{b}.example{port}"),
        8 => format!("reg{a}.zone.example{port}"),
        9 => rng
            .pick(&[
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                "europe-west1-docker.pkg.dev",
                "myreg.azurecr.io",
                "docker.io",
                "index.docker.io",
                "ghcr.io",
            ])
            .into(),
        10 => rng
            .pick(&["localhost:5000", "localhost", "single", "a.b", "a.b.c"])
            .into(),
        11 => format!("[fe80::{a:x}]{port}"),
        12 => format!("[FE80:0::{a:X}]{port}"),
        _ => format!("corp{b}.example{port}"),
    };
    let repository = match rng.below(6) {
        0 => format!("team-{c}/app"),
        1 => format!("team-{c}/app/api"),
        2 => "library/nginx".into(),
        3 => format!("x/app-{c}"),
        4 => "api".into(),
        _ => format!("team-{c}"),
    };
    (registry, repository)
}

// ---- the naive reference: plain recursion, no index ----

fn naive_glob(p: &[u8], t: &[u8]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some((b'*', rest)) => naive_glob(rest, t) || (!t.is_empty() && naive_glob(p, &t[1..])),
        Some((b'?', rest)) => !t.is_empty() && naive_glob(rest, &t[1..]),
        Some((c, rest)) => t.first() == Some(c) && naive_glob(rest, &t[1..]),
    }
}

fn naive_repo(g: &[&str], r: &[&str]) -> bool {
    match g.split_first() {
        None => r.is_empty(),
        Some((&"**", rest)) => naive_repo(rest, r) || (!r.is_empty() && naive_repo(g, &r[1..])),
        Some((s, rest)) => {
            !r.is_empty() && naive_glob(s.as_bytes(), r[0].as_bytes()) && naive_repo(rest, &r[1..])
        }
    }
}

fn split_host(s: &str) -> (&str, &str) {
    if s.starts_with('[') {
        let end = s.find(']').map_or(s.len(), |i| i + 1);
        (&s[..end], s[end..].strip_prefix(':').unwrap_or(""))
    } else {
        s.split_once(':').unwrap_or((s, ""))
    }
}

/// `pattern` and `registry` are lowercase, `index.docker.io` already mapped.
fn naive_host(pattern: &str, registry: &str) -> bool {
    let ((ph, pp), (rh, rp)) = (split_host(pattern), split_host(registry));
    if pp != rp {
        return false;
    }
    // IPv6 hosts are only matched by IPv6 patterns (a glob label never
    // matches an address, unlike a plain kubelet label split would).
    if ph.starts_with('[') || rh.starts_with('[') {
        let addr = |h: &str| h.trim_matches(['[', ']']).parse::<Ipv6Addr>().ok();
        return addr(ph).is_some() && addr(ph) == addr(rh);
    }
    let (pl, rl): (Vec<&str>, Vec<&str>) = (ph.split('.').collect(), rh.split('.').collect());
    pl.len() == rl.len()
        && pl
            .iter()
            .zip(&rl)
            .all(|(p, r)| naive_glob(p.as_bytes(), r.as_bytes()))
}

fn normalize(host: &str) -> String {
    let h = host.to_ascii_lowercase();
    if h == "index.docker.io" {
        "docker.io".into()
    } else {
        h
    }
}

#[test]
fn ten_thousand_rules_match_like_a_linear_scan() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let text = generated_policy(10_000, &mut rng);
    let policy = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let naive_rules: Vec<(Vec<String>, Vec<Vec<String>>)> = policy
        .rules()
        .iter()
        .map(|r| {
            let hosts = r.registries.iter().map(|h| normalize(h)).collect();
            let repos = r
                .repositories
                .iter()
                .map(|g| g.split('/').map(String::from).collect())
                .collect();
            (hosts, repos)
        })
        .collect();
    let compiled = CompiledPolicy::compile(policy);
    assert_eq!(compiled.rules().len(), 10_000);
    let (mut total, mut out) = (0, RuleIds::new());
    for _ in 0..400 {
        let (registry, repository) = image(&mut rng);
        let (reg, segs) = (
            normalize(&registry),
            repository.split('/').collect::<Vec<_>>(),
        );
        let want: Vec<usize> = naive_rules
            .iter()
            .enumerate()
            .filter(|(_, (hosts, repos))| {
                hosts.iter().any(|h| naive_host(h, &reg))
                    && (repos.is_empty()
                        || repos.iter().any(|g| {
                            naive_repo(&g.iter().map(String::as_str).collect::<Vec<_>>(), &segs)
                        }))
            })
            .map(|(i, _)| i)
            .collect();
        out.clear();
        compiled.match_image(&registry, &repository, &mut out);
        assert_eq!(out[..], want, "image {registry}/{repository}");
        total += want.len();
    }
    assert!(
        total > 10_000,
        "the generated images should hit many rules, got {total}"
    );
}

#[test]
#[ignore = "prints timings; run with --release --ignored --nocapture"]
fn timings_for_ten_thousand_rules() {
    use std::time::Instant;
    let mixed = generated_policy(10_000, &mut Rng(42));
    let mut simple = String::from("rules:\n");
    for i in 0..10_000 {
        let host = if i % 10 == 0 {
            format!("'*.team{i}.example'")
        } else {
            format!("reg{i}.corp.example")
        };
        simple.push_str(&format!(
            "- {{name: r{i}, registries: [{host}], secrets: [s]}}\n"
        ));
    }
    for (label, text) in [("mixed", &mixed), ("simple", &simple)] {
        let t = Instant::now();
        let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
        while !matches!(
            parser.next_token(),
            Ok((yaml_rust2::Event::StreamEnd, _)) | Err(_)
        ) {}
        let events = t.elapsed();
        let t = Instant::now();
        let policy = parse(text).unwrap();
        let parsed = t.elapsed();
        let t = Instant::now();
        let compiled = CompiledPolicy::compile(policy);
        let compile = t.elapsed();
        let mut out = RuleIds::new();
        let images = [
            "reg5001.corp.example",
            "x.team500.example",
            "miss.example",
            "reg1.corp1.example",
        ];
        let t = Instant::now();
        for i in 0..100_000 {
            out.clear();
            compiled.match_image(images[i % 4], "team-1/app", &mut out);
        }
        let matched = t.elapsed() / 100_000;
        println!(
            "{label}: {} bytes: yaml events {events:?}, parse {parsed:?}, compile {compile:?}, match_image {matched:?} ({} hits last)",
            text.len(),
            out.len()
        );
    }
}

/// Thousands of rules on one registry, told apart by repository: the
/// repository-segment index must give exactly what checking every rule's
/// globs gives.
#[test]
fn rules_sharing_a_registry_match_like_a_linear_scan() {
    let globs = [
        "team-{i}/**",
        "team-{i}/app",
        "team-{i}/*",
        "*/team-{i}",
        "**",
        "team-{i}-*/x",
        "shared/team-{i}/**",
    ];
    let mut rng = Rng(0x5eed_cafe);
    let mut text = String::from("rules:\n");
    for i in 0..3_000 {
        text.push_str(&format!(
            "- name: r{i}\n  registries: [harbor.example, \"*.example\"]\n  secrets: [s{i}]\n"
        ));
        if rng.below(10) > 0 {
            let n = 1 + rng.below(2);
            let chosen: Vec<String> = (0..n)
                .map(|_| {
                    format!(
                        "\"{}\"",
                        rng.pick(&globs).replace("{i}", &rng.below(50).to_string())
                    )
                })
                .collect();
            text.push_str(&format!("  repositories: [{}]\n", chosen.join(", ")));
        }
    }
    let policy = CompiledPolicy::from_text(&text).expect("valid");
    let repos = [
        "team-3/app",
        "team-3/x/y",
        "team-3",
        "other/team-3",
        "team-3-a/x",
        "shared/team-7/z",
        "library/nginx",
        "team-49/app",
    ];
    for repo in repos {
        let expected: Vec<usize> = (0..policy.rules().len())
            .filter(|&i| policy.rules()[i].repository_matches(repo))
            .collect();
        let mut got = RuleIds::new();
        policy.match_image("harbor.example", repo, &mut got);
        assert_eq!(got[..], expected, "{repo}");
        got.clear();
        policy.match_image("Other.Example", repo, &mut got);
        assert_eq!(got[..], expected, "{repo} via the glob host");
    }
}
