//! Host patterns (kubelet `matchImages` semantics), repository globs, and
//! the order of `match_image` results.

use super::{compiled, matching, one_rule};
use crate::core::policy::glob::RepoGlob;
use crate::core::policy::host::{HostPattern, HostPatternError};

/// (pattern, image registry, matches)
const HOST_CASES: &[(&str, &str, bool)] = &[
    // exact, case-insensitive
    ("harbor.corp.example", "harbor.corp.example", true),
    ("harbor.corp.example", "Harbor.Corp.Example", true),
    ("HARBOR.corp.example", "harbor.corp.example", true),
    ("harbor.corp.example", "other.corp.example", false),
    ("harbor.corp.example", "corp.example", false),
    ("localhost:5000", "localhost:5000", true),
    ("localhost", "localhost:5000", false),
    ("10.0.0.1:5000", "10.0.0.1:5000", true),
    // ports compare exactly; absent == absent only
    ("harbor.corp.example", "harbor.corp.example:443", false),
    ("harbor.corp.example:5000", "harbor.corp.example", false),
    ("harbor.corp.example:5000", "harbor.corp.example:5000", true),
    ("harbor.corp.example:5000", "Harbor.Corp.Example:5000", true),
    (
        "harbor.corp.example:5000",
        "harbor.corp.example:5001",
        false,
    ),
    (
        "harbor.corp.example:5000",
        "harbor.corp.example:05000",
        false,
    ),
    // '*' is exactly one label
    ("*.corp.example", "harbor.corp.example", true),
    ("*.corp.example", "corp.example", false),
    ("*.corp.example", "a.b.corp.example", false),
    ("*.corp.example", "harbor.corp.example:5000", false),
    ("*.corp.example:5000", "harbor.corp.example:5000", true),
    ("*.corp.example:5000", "HARBOR.corp.example:5000", true),
    ("*.corp.example:5000", "harbor.corp.example", false),
    ("*.corp.example:5000", "harbor.corp.example:5001", false),
    ("*.*.corp.example", "a.b.corp.example", true),
    ("*.*.corp.example", "b.corp.example", false),
    ("*", "localhost", true),
    ("*", "docker.io", false),
    ("*.*", "docker.io", true),
    ("*.*", "ghcr.io:443", false),
    ("registry.*", "registry.local", true),
    ("registry.*", "registry.local.x", false),
    // partial-label globs
    ("ecr-*.corp.example", "ecr-1.corp.example", true),
    ("ecr-*.corp.example", "ecr-.corp.example", true),
    ("ecr-*.corp.example", "gcr-1.corp.example", false),
    ("*-mirror.corp.example", "eu-mirror.corp.example", true),
    ("reg?.corp.example", "reg1.corp.example", true),
    ("reg?.corp.example", "reg12.corp.example", false),
    ("harbor.*.example", "harbor.corp.example", true),
    ("harbor.*.example", "harbor.corp.example.org", false),
    // IPv6 literals: exact, as addresses
    ("[::1]:5000", "[::1]:5000", true),
    ("[::1]:5000", "[0:0:0:0:0:0:0:1]:5000", true),
    ("[::1]:5000", "[::1]", false),
    ("[::1]:5000", "[::1]:5001", false),
    ("[::1]:5000", "[::2]:5000", false),
    ("[::1]", "[::1]", true),
    ("[fe80::1]", "[FE80::1]", true),
    // Docker Hub
    ("docker.io", "docker.io", true),
    ("index.docker.io", "docker.io", true),
    ("docker.io", "index.docker.io", true),
    ("Index.Docker.IO", "docker.io", true),
    ("*.docker.io", "docker.io", false),
    ("registry-1.docker.io", "docker.io", false),
    // Amazon ECR
    (
        "*.dkr.ecr.*.amazonaws.com",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        true,
    ),
    (
        "*.dkr.ecr.*.amazonaws.com",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com.cn",
        false,
    ),
    (
        "*.dkr.ecr.*.amazonaws.com",
        "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
        false,
    ),
    ("*.dkr.ecr.*.amazonaws.com", "public.ecr.aws", false),
    (
        "*.dkr.ecr.*.amazonaws.com.cn",
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
        true,
    ),
    // Google GCR / Artifact Registry
    ("*-docker.pkg.dev", "europe-west1-docker.pkg.dev", true),
    ("*-docker.pkg.dev", "docker.pkg.dev", false),
    ("*-docker.pkg.dev", "europe-west1-maven.pkg.dev", false),
    ("gcr.io", "gcr.io", true),
    ("gcr.io", "eu.gcr.io", false),
    ("*.gcr.io", "eu.gcr.io", true),
    // Azure ACR
    ("*.azurecr.io", "myregistry.azurecr.io", true),
    ("*.azurecr.io", "azurecr.io", false),
    ("*.azurecr.io", "myregistry.azurecr.io.evil.example", false),
    ("*.azurecr.io", "evil.example/myregistry.azurecr.io", false),
    // GHCR
    ("ghcr.io", "ghcr.io", true),
    ("ghcr.io", "ghcr.io:443", false),
];

#[test]
fn host_pattern_table() {
    let mut failures = Vec::new();
    for &(pattern, registry, want) in HOST_CASES {
        let p = compiled(&one_rule(pattern, &[]));
        let got = !matching(&p, registry, "some/repo").is_empty();
        if got != want {
            failures.push(format!(
                "{pattern:?} vs {registry:?}: want {want}, got {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn host_pattern_errors() {
    use HostPatternError as E;
    let cases: &[(&str, E)] = &[
        ("", E::Empty),
        ("harbor.io/team", E::Path),
        ("https://harbor.io", E::Scheme("https://".into())),
        ("oci://harbor.io", E::Scheme("oci://".into())),
        ("harbor io", E::Whitespace),
        (" harbor.io", E::Whitespace),
        ("a..b", E::EmptyLabel),
        (".a.b", E::EmptyLabel),
        ("a.b.", E::EmptyLabel),
        ("harbor.io:", E::EmptyPort),
        ("harbor.io:abc", E::PortNotNumber("abc".into())),
        ("harbor.io:70000", E::PortRange("70000".into())),
        ("harbor.io:0", E::PortRange("0".into())),
        ("harbor.io:05000", E::PortLeadingZero("05000".into())),
        ("user@harbor.io", E::BadChar('@')),
        ("harbor_io", E::BadChar('_')),
        ("hårbor.io", E::BadChar('å')),
        ("::1", E::UnbracketedIpv6),
        ("a.b:1:2", E::UnbracketedIpv6),
        ("[::1", E::BadIpv6("::1".into())),
        ("[zz::1]", E::BadIpv6("zz::1".into())),
        ("[::1]x", E::AfterBracket),
        ("[::1]:x", E::PortNotNumber("x".into())),
        ("-a.io", E::LabelEdge("-a".into())),
        ("a-.io", E::LabelEdge("a-".into())),
    ];
    for (pattern, want) in cases {
        assert_eq!(
            HostPattern::parse(pattern).as_ref(),
            Err(want),
            "{pattern:?}"
        );
    }
    let long_label = format!("{}.io", "a".repeat(64));
    assert!(matches!(
        HostPattern::parse(&long_label),
        Err(E::LabelTooLong(_))
    ));
    let long_host = vec!["a".repeat(60); 5].join(".");
    assert_eq!(HostPattern::parse(&long_host), Err(E::TooLong));
    for ok in [
        "*",
        "*-*.x",
        "a-b.io:65535",
        "[2001:db8::1]:443",
        "xn--bcher-kva.example",
    ] {
        assert!(HostPattern::parse(ok).is_ok(), "{ok:?}");
    }
}

/// (glob, repository, matches)
const REPO_CASES: &[(&str, &str, bool)] = &[
    ("team-a/**", "team-a/x", true),
    ("team-a/**", "team-a/x/y", true),
    ("team-a/**", "team-a", true),
    ("team-a/**", "team-b/x", false),
    ("team-a/**", "team-ab/x", false),
    ("*", "nginx", true),
    ("*", "library/nginx", false),
    ("*/*", "library/nginx", true),
    ("library/*", "library/nginx", true),
    ("library/*", "library/nginx/x", false),
    ("library/*", "library", false),
    ("**", "a", true),
    ("**", "a/b/c", true),
    ("**/api", "team-a/app/api", true),
    ("**/api", "api", true),
    ("**/api", "api/x", false),
    ("team-a/**/api", "team-a/api", true),
    ("team-a/**/api", "team-a/x/y/api", true),
    ("team-a/**/api", "team-a/x/y/apix", false),
    ("*/app-*", "team/app-web", true),
    ("*/app-*", "team/web", false),
    ("*/app-*", "team/x/app-web", false),
    ("library/nginx", "library/nginx", true),
    ("library/nginx", "library/nginx2", false),
    ("library/nginx", "library", false),
    ("a/**/b/**/c", "a/x/b/y/z/c", true),
    ("a/**/b/**/c", "a/b/c", true),
    ("a/**/b/**/c", "a/c", false),
    ("**/**", "a", true),
    ("**/b/c", "a/b/c/b/c", true),
    ("**/b/c", "a/b/c/b", false),
    ("my-org/**", "my-org/app", true),
];

#[test]
fn repository_glob_table() {
    for &(glob, repo, want) in REPO_CASES {
        let g = RepoGlob::parse(glob).unwrap();
        assert_eq!(g.matches(repo), want, "{glob:?} vs {repo:?}");
    }
}

#[test]
fn ghcr_rule_is_limited_to_its_organisation() {
    let p = compiled(&one_rule("ghcr.io", &["my-org/**"]));
    for (registry, repo, want) in [
        ("ghcr.io", "my-org/app", true),
        ("ghcr.io", "my-org/team/app", true),
        ("GHCR.io", "my-org/app", true),
        ("ghcr.io", "other-org/app", false),
        ("ghcr.io", "my-orgx/app", false),
        ("docker.io", "my-org/app", false),
    ] {
        assert_eq!(
            !matching(&p, registry, repo).is_empty(),
            want,
            "{registry} {repo}"
        );
    }
}

#[test]
fn results_are_ascending_without_duplicates_and_appended() {
    let text = "rules:\n\
        - {name: wild, registries: ['*.corp.example', harbor.corp.example], secrets: [s]}\n\
        - {name: v6, registries: ['[::1]:5000'], secrets: [s]}\n\
        - {name: exact, registries: [harbor.corp.example, HARBOR.corp.example], secrets: [s]}\n\
        - {name: repo-a, registries: ['harbor.*.example'], repositories: [team-a/**], secrets: [s]}\n\
        - {name: repo-b, registries: ['*.*.example'], repositories: [team-b/**], secrets: [s]}\n\
        - {name: again, registries: ['*.corp.example', '*.corp.example', '?arbor.corp.example'], secrets: [s]}\n\
        - {name: v6-too, registries: ['[0::1]:5000'], secrets: [s]}\n";
    let p = compiled(text);
    assert_eq!(
        matching(&p, "harbor.corp.example", "team-a/app"),
        [0, 2, 3, 5]
    );
    assert_eq!(
        matching(&p, "Harbor.Corp.Example", "team-b/app"),
        [0, 2, 4, 5]
    );
    assert_eq!(matching(&p, "x.corp.example", "team-b/app"), [0, 4, 5]);
    assert_eq!(matching(&p, "[::1]:5000", "x"), [1, 6]);
    assert!(matching(&p, "corp.example", "team-a/app").is_empty());
    let mut out = crate::core::policy::RuleIds::from_slice(&[99]);
    p.match_image("harbor.corp.example", "x", &mut out);
    assert_eq!(out[..], [99, 0, 2, 5]);
}

#[test]
fn malformed_registries_match_nothing_and_do_not_panic() {
    let p = compiled(&one_rule("*", &[]));
    for registry in [
        "", ":", "a:", "a:99999", "[", "[::1", "[::1]:", "a..b", ".", "a:b:c", "é",
    ] {
        let _ = matching(&p, registry, "");
        let _ = matching(&p, registry, "/");
    }
    assert!(matching(&p, "a:99999", "x").is_empty());
}
