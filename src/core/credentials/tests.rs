//! Table tests: the kubelet's own cases (`keyring_test.go`,
//! `config_test.go`) restated as data, then edge cases of our own.

use super::*;

fn config(keys: &[&str]) -> DockerConfig {
    DockerConfig {
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
    }
}

fn ring(configs: &[&[&str]]) -> Keyring {
    let configs: Vec<DockerConfig> = configs.iter().map(|keys| config(keys)).collect();
    Keyring::new(&configs)
}

/// `(source, key)` pairs of a lookup, in order.
fn found(ring: &Keyring, name: &str) -> Vec<(usize, String)> {
    ring.lookup_name(name)
        .into_iter()
        .map(|c| (c.source(), c.key().to_owned()))
        .collect()
}

fn keys_of(ring: &Keyring, name: &str) -> Vec<String> {
    found(ring, name).into_iter().map(|(_, k)| k).collect()
}

fn urls_match(glob: &str, target: &str) -> bool {
    let glob = go::parse_schemeless(glob.as_bytes()).map(go::SplitUrl::new);
    let target = go::parse_schemeless(target.as_bytes()).map(go::SplitUrl::new);
    matches!((glob, target), (Some(g), Some(t)) if g.matches(&t))
}

fn parse(format: ConfigFormat, text: &str) -> Result<Vec<String>, ParseDockerConfigError> {
    DockerConfig::parse(format, text.as_bytes()).map(|c| c.keys().to_vec())
}

const JSON: ConfigFormat = ConfigFormat::DockerConfigJson;
const CFG: ConfigFormat = ConfigFormat::Dockercfg;

#[test]
fn host_globs_need_equal_label_counts_and_ports() {
    // keyring_test.go TestURLsMatch
    let cases = [
        ("*.kubernetes.io", "prefix.kubernetes.io", true),
        ("prefix.*.io", "prefix.kubernetes.io", true),
        ("prefix.kubernetes.*", "prefix.kubernetes.io", true),
        ("*-good.kubernetes.io", "prefix-good.kubernetes.io", true),
        ("*.kubernetes.io/blah", "prefix.kubernetes.io/blah", true),
        ("prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", true),
        (
            "*.kubernetes.io:1111/blah",
            "prefix.kubernetes.io:1111/blah",
            true,
        ),
        (
            "prefix.*.io:1111/foo",
            "prefix.kubernetes.io:1111/foo/bar",
            true,
        ),
        ("*.kubernetes.io", "kubernetes.io", false),
        ("*.*.kubernetes.io", "prefix.kubernetes.io", false),
        ("*.*.kubernetes.io", "kubernetes.io", false),
        ("*kubernetes.io", "a.kubernetes.io", false),
        ("*kubernetes.io", "kubernetes.io", true),
        ("*.*.*.kubernetes.io", "a.b.c.kubernetes.io", true),
        ("kubernetes.io", "kubernetes.com", false),
        ("k*.io", "quay.io", false),
        (
            "*.kubernetes.io:1234/blah",
            "prefix.kubernetes.io:1111/blah",
            false,
        ),
        (
            "prefix.*.io/foo",
            "prefix.kubernetes.io:1111/foo/bar",
            false,
        ),
    ];
    for (glob, target, want) in cases {
        assert_eq!(urls_match(glob, target), want, "{glob} vs {target}");
    }
}

#[test]
fn glob_keys_with_schemes_paths_and_ports_hit() {
    // keyring_test.go TestDockerKeyringForGlob: each key finds TARGET/foo/bar.
    let cases = [
        ("https://hello.kubernetes.io", "hello.kubernetes.io"),
        ("https://*.docker.io", "prefix.docker.io"),
        ("https://prefix.*.io", "prefix.docker.io"),
        ("https://prefix.docker.*", "prefix.docker.io"),
        ("https://*.docker.io/path", "prefix.docker.io/path"),
        ("https://prefix.*.io/path", "prefix.docker.io/path/subpath"),
        ("https://prefix.docker.*/path", "prefix.docker.io/path"),
        ("https://*.docker.io:8888", "prefix.docker.io:8888"),
        ("https://prefix.*.io:8888", "prefix.docker.io:8888"),
        ("https://prefix.docker.*:8888", "prefix.docker.io:8888"),
        (
            "https://*.docker.io/path:1111",
            "prefix.docker.io/path:1111",
        ),
        ("https://*.docker.io/v1/", "prefix.docker.io/path:1111"),
        ("https://*.docker.io/v2/", "prefix.docker.io/path:1111"),
        (
            "https://prefix.docker.*/path:1111",
            "prefix.docker.io/path:1111",
        ),
        ("prefix.docker.io:1111", "prefix.docker.io:1111/path"),
        ("*.docker.io:1111", "prefix.docker.io:1111/path"),
    ];
    for (key, target) in cases {
        let ring = ring(&[&[key]]);
        assert_eq!(keys_of(&ring, &format!("{target}/foo/bar")), [key], "{key}");
    }
}

#[test]
fn keys_for_other_hosts_miss() {
    // keyring_test.go TestKeyringMiss: each key misses LOOKUP/foo/bar.
    let cases = [
        ("https://hello.kubernetes.io", "world.mesos.org/foo/bar"),
        ("https://*.docker.com", "prefix.docker.io"),
        ("https://suffix.*.io", "prefix.docker.io"),
        ("https://prefix.docker.c*", "prefix.docker.io"),
        (
            "https://prefix.*.io/path:1111",
            "prefix.docker.io/path/subpath:1111",
        ),
        ("suffix.*.io", "prefix.docker.io"),
    ];
    for (key, lookup) in cases {
        let ring = ring(&[&[key]]);
        assert!(
            keys_of(&ring, &format!("{lookup}/foo/bar")).is_empty(),
            "{key}"
        );
    }
}

#[test]
fn docker_hub_key_serves_docker_hub_names_only() {
    // keyring_test.go TestKeyringMissWithDockerHubCredentials and the
    // TestKeyringHitWith*DockerHub tests.
    let ring = ring(&[&["https://index.docker.io/v1/"]]);
    assert!(keys_of(&ring, "world.mesos.org/foo/bar").is_empty());
    for name in [
        "google/docker-registry",
        "jenkins",
        "index.docker.io/v1//google/docker-registry",
    ] {
        assert_eq!(
            keys_of(&ring, name),
            ["https://index.docker.io/v1/"],
            "{name}"
        );
    }
}

#[test]
fn default_registry_names_are_recognised_by_their_first_part() {
    // keyring_test.go TestIsDefaultRegistryMatch, plus the quirks.
    let cases = [
        ("foo/bar", true),
        ("docker.io/foo/bar", true),
        ("index.docker.io/foo/bar", true),
        ("foo", true),
        ("", false),
        ("registry.tld/foo/bar", false),
        ("registry:5000/foo/bar", false),
        ("myhostdocker.io/foo/bar", false),
        ("localhost/x", true),
        ("Foo/x", true),
        ("/x", false),
        ("[::1]/x", false),
    ];
    for (name, want) in cases {
        assert_eq!(is_default_registry_match(name), want, "{name:?}");
    }
}

#[test]
fn deeper_paths_come_first_and_prefixes_are_textual() {
    // keyring_test.go TestDockerKeyringLookup ("grace" and "ada").
    let ring = ring(&[&["bar.example.com/pong", "bar.example.com"]]);
    let both = ["bar.example.com/pong", "bar.example.com"];
    let cases: [(&str, &[&str]); 7] = [
        ("bar.example.com", &["bar.example.com"]),
        ("bar.example.com/pong", &both),
        ("bar.example.com/ping", &["bar.example.com"]),
        ("bar.example.com/pongz", &both),
        ("bar.example.com/pong/pang", &both),
        ("example.com", &[]),
        ("foo.example.com", &[]),
    ];
    for (name, want) in cases {
        assert_eq!(keys_of(&ring, name), want, "{name}");
    }
}

#[test]
fn v1_path_with_scheme_means_the_whole_host() {
    // keyring_test.go TestIssue3797.
    let ring = ring(&[&["https://quay.io/v1/"]]);
    for name in ["quay.io", "quay.io/foo", "quay.io/foo/bar"] {
        assert_eq!(keys_of(&ring, name), ["https://quay.io/v1/"], "{name}");
    }
}

#[test]
fn config_formats_read_their_keys() {
    // config_test.go TestDockerConfigJsonJSONDecode / TestDockerConfigJSONDecode.
    let json = r#"{"auths": {"http://foo.example.com":{"username": "foo", "password": "bar", "email": "foo@example.com"}, "http://bar.example.com":{"username": "bar", "password": "baz", "email": "bar@example.com"}}}"#;
    let keys = ["http://foo.example.com", "http://bar.example.com"];
    assert_eq!(parse(JSON, json).unwrap(), keys);
    let cfg = r#"{"http://foo.example.com":{"username": "foo", "password": "bar", "email": "foo@example.com"}, "http://bar.example.com":{"username": "bar", "password": "baz", "email": "bar@example.com"}}"#;
    assert_eq!(parse(CFG, cfg).unwrap(), keys);
    // TestReadDockerConfigFile's content.
    let file = r#"{ "auths": { "http://foo.example.com":{"auth":"Zm9vOmJhcgo=","email":"foo@example.com"}}}"#;
    assert_eq!(parse(JSON, file).unwrap(), ["http://foo.example.com"]);
}

#[test]
fn entries_are_checked_like_the_kubelet_decodes_them() {
    // config_test.go TestDockerConfigEntryJSONDecode, as entries of a .dockercfg.
    let cases = [
        (
            r#"{"username": "foo", "password": "bar", "email": "foo@example.com"}"#,
            true,
        ),
        (
            r#"{"auth": "Zm9vOmJhcg==", "email": "foo@example.com"}"#,
            true,
        ),
        (
            r#"{"username": "foo", "password": "bar", "auth": "cGluZzpwb25n", "email": "foo@example.com"}"#,
            true,
        ),
        (r#"{"auth": "pants", "email": "foo@example.com"}"#, false),
        (r#"{"email": false}"#, false),
        // Our own.
        (r#"null"#, true),
        (r#"{}"#, true),
        (r#"{"auth": ""}"#, true),
        (r#"{"auth": null}"#, true),
        (r#"{"auth": "pants", "AUTH": "Zm9vOmJhcg=="}"#, true),
        (r#"{"auth": "Zm9vOmJhcg==", "Auth": "pants"}"#, false),
        (r#"{"auth": "Zm9vOmJhcg==", "Auth": null}"#, true),
        (r#"{"identitytoken": 5, "serveraddress": [1]}"#, true),
        (r#"{"username": 5}"#, false),
        (r#"{"paſſword": {}}"#, false),
        (r#""string""#, false),
        (r#"[]"#, false),
        (r#"5"#, false),
        (r#"true"#, false),
    ];
    for (entry, ok) in cases {
        let text = format!(r#"{{"reg.io": {entry}}}"#);
        let result = parse(CFG, &text);
        assert_eq!(result.is_ok(), ok, "{entry}: {result:?}");
        if ok {
            assert_eq!(result.unwrap(), ["reg.io"]);
        }
    }
}

#[test]
fn auth_must_be_base64_of_user_colon_password() {
    // config_test.go TestDecodeDockerConfigFieldAuth, plus Go's base64 rules.
    let cases = [
        ("Zm9vOmJhcg==", true),
        ("Zm9vOmJhcg", true),
        ("cGFudHM=", false),
        ("pants", false),
        ("Zm9vOmJhcg=", false),
        ("Zm9v\nOmJhcg==\r\n", true),
        ("Zm9vOmJhcg== ", false),
        ("Zm9vOmJhcgo=", true),
        ("Zm9vOmJhcg===", false),
        ("Og", true),
        ("O", false),
        ("Oh", true),
        ("Zm9vOmJhcg=\n=", true),
        ("YTpi=", false),
    ];
    for (auth, ok) in cases {
        assert_eq!(go::auth_is_valid(auth), ok, "{auth:?}");
    }
}

#[test]
fn document_shapes_follow_go_json() {
    let cases: [(ConfigFormat, &str, Option<&[&str]>); 18] = [
        (JSON, "", Some(&[])),
        (JSON, "null", Some(&[])),
        (JSON, "{}", Some(&[])),
        (JSON, r#"{"auths": null}"#, Some(&[])),
        (
            JSON,
            r#"{"Auths": {"a.io": {}}, "AUTHS": {"b.io": {}}}"#,
            Some(&["a.io", "b.io"]),
        ),
        (
            JSON,
            r#"{"auths": {"a.io": {}}, "auths": null, "auths": {"b.io": {}}}"#,
            Some(&["b.io"]),
        ),
        (JSON, r#"{"authſ": {"a.io": {}}}"#, Some(&["a.io"])),
        (
            JSON,
            r#"{"auths": {"a.io": {}, "a.io": null}}"#,
            Some(&["a.io"]),
        ),
        (JSON, r#"{"auths": {}, "reg.io": {"auth": "x"}}"#, Some(&[])),
        (JSON, r#"{"HttpHeaders": {"User-Agent": 5}}"#, None),
        (
            JSON,
            r#"{"httpheaders": {"User-Agent": null}, "credsStore": 5}"#,
            Some(&[]),
        ),
        (JSON, r#"{"auths": []}"#, None),
        (JSON, "[]", None),
        (JSON, r#"{"auths": {}} x"#, None),
        (CFG, "null", Some(&[])),
        (CFG, r#"{"auths": {"reg.io": {}}}"#, Some(&["auths"])),
        (CFG, r#""x""#, None),
        (CFG, "{", None),
    ];
    for (format, text, want) in cases {
        let got = parse(format, text);
        match want {
            Some(keys) => assert_eq!(got.unwrap(), keys, "{text}"),
            None => assert!(got.is_err(), "{text}: {got:?}"),
        }
    }
}

#[test]
fn errors_never_quote_values() {
    let texts = [
        r#"{"auths": {"reg.io": {"auth": "c2VjcmV0"}}}"#,
        r#"{"auths": {"reg.io": {"password": 123456789}}}"#,
        r#"{"auths": {"reg.io": "s3cr3tvalue"}}"#,
        r#"{"auths": {"reg.io": {"username": ["s3cr3tvalue"]}}}"#,
    ];
    for text in texts {
        let message = parse(JSON, text).unwrap_err().to_string();
        for secret in ["c2VjcmV0", "123456789", "s3cr3tvalue"] {
            assert!(!message.contains(secret), "{message}");
        }
        assert!(message.contains("reg.io"), "{message}");
    }
}

#[test]
fn invalid_utf8_in_keys_becomes_one_replacement_per_byte() {
    let text = b"{\"auths\": {\"r\xe2\x82g.io\": {}}}";
    let config = DockerConfig::parse(JSON, text).unwrap();
    assert_eq!(config.keys(), ["r\u{FFFD}\u{FFFD}g.io"]);
}

#[test]
fn detection_reads_an_auths_member_as_dockerconfigjson() {
    let cases = [
        (r#"{"auths": {"a.io": {}}}"#, JSON, vec!["a.io"]),
        (r#"{"AUTHS": {"a.io": {}}, "b.io": {}}"#, JSON, vec!["a.io"]),
        (r#"{"a.io": {}}"#, CFG, vec!["a.io"]),
        ("{}", CFG, vec![]),
        ("null", CFG, vec![]),
        ("", CFG, vec![]),
    ];
    for (text, format, keys) in cases {
        let (got_format, config) = DockerConfig::parse_detected(text.as_bytes()).unwrap();
        assert_eq!(got_format, format, "{text}");
        assert_eq!(config.keys(), keys, "{text}");
    }
    assert!(DockerConfig::parse_detected(b"[1]").is_err());
}

#[test]
fn keys_normalize_like_add() {
    let cases: [(&str, Option<&str>); 18] = [
        ("reg.io", Some("reg.io")),
        ("https://reg.io/", Some("reg.io")),
        ("http://reg.io/v2/", Some("reg.io")),
        ("https://index.docker.io/v1/", Some("index.docker.io")),
        ("index.docker.io/v1", Some("index.docker.io/v1")),
        ("reg.io/v1/team", Some("reg.io/team")),
        ("user:pw@reg.io/team?x=1#frag", Some("reg.io/team")),
        ("reg.io/a%2Fb", Some("reg.io/a/b")),
        ("HTTPS://reg.io", Some("HTTPS://reg.io")),
        ("reg.io:", Some("reg.io:")),
        ("reg.io:port", None),
        ("reg.io/%zz", None),
        ("reg.io#%zz", None),
        ("reg.io/\t", None),
        ("%41.io", None),
        ("r\u{e9}g.io", Some("r\u{e9}g.io")),
        ("[a-c].io", None),
        ("x.[a-c].io", Some("x.[a-c].io")),
    ];
    for (key, want) in cases {
        assert_eq!(normalize(key).as_deref(), want.map(str::as_bytes), "{key}");
    }
}

#[test]
fn unparsable_keys_are_listed_as_ignored() {
    let ring = ring(&[&["reg.io", "reg.io:port"], &["reg.io/%zz"]]);
    let ignored: Vec<_> = ring
        .ignored()
        .iter()
        .map(|c| (c.source(), c.key()))
        .collect();
    assert_eq!(ignored, [(0, "reg.io:port"), (1, "reg.io/%zz")]);
    assert_eq!(keys_of(&ring, "reg.io/x"), ["reg.io"]);
}

#[test]
fn order_is_descending_normalized_key_then_pod_secret_order() {
    let ring = ring(&[
        &["*.io", "reg.io", "https://reg.io/team"],
        &["reg.io/team", "reg.io:5000", "https://reg.io"],
    ]);
    assert_eq!(
        found(&ring, "reg.io/team/api"),
        [
            (0, "https://reg.io/team".to_owned()),
            (1, "reg.io/team".to_owned()),
            (0, "reg.io".to_owned()),
            (1, "https://reg.io".to_owned()),
            (0, "*.io".to_owned()),
        ]
    );
    // The same key in two secrets is tried twice.
    let ring = super::tests::ring(&[&["reg.io"], &["reg.io"]]);
    assert_eq!(
        found(&ring, "reg.io/x"),
        [(0, "reg.io".into()), (1, "reg.io".into())]
    );
}

#[test]
fn docker_hub_fallback_only_when_nothing_matched() {
    let hub = "https://index.docker.io/v1/";
    let ring = ring(&[
        &[hub, "index.docker.io", "docker.io/library"],
        &["http://index.docker.io/v2/"],
    ]);
    let all_hub = [hub, "index.docker.io", "http://index.docker.io/v2/"];
    let cases: [(&str, &[&str]); 7] = [
        ("docker.io/library/nginx", &["docker.io/library"]),
        ("docker.io/bitnami/redis", &all_hub),
        ("localhost/x", &all_hub),
        ("Foo/x", &all_hub),
        ("localhost:5000/x", &[]),
        ("quay.io/x", &[]),
        ("[::1]/x", &[]),
    ];
    for (name, want) in cases {
        let mut got = keys_of(&ring, name);
        if want.len() > 1 {
            // Keys normalized alike keep document order within a secret;
            // compare as the sets the kubelet's map order allows.
            got.sort();
            let mut want = want.to_vec();
            want.sort();
            assert_eq!(got, want, "{name}");
        } else {
            assert_eq!(got, want, "{name}");
        }
    }
}

#[test]
fn matching_is_case_sensitive_and_ports_compare_as_text() {
    let ring = ring(&[&["Reg.io", "reg.io:05000", "*.Corp.example"]]);
    assert!(keys_of(&ring, "reg.io/x").is_empty());
    assert_eq!(keys_of(&ring, "Reg.io/x"), ["Reg.io"]);
    assert!(keys_of(&ring, "reg.io:5000/x").is_empty());
    assert_eq!(keys_of(&ring, "reg.io:05000/x"), ["reg.io:05000"]);
    assert!(keys_of(&ring, "a.corp.example/x").is_empty());
    let ring = super::tests::ring(&[&["reg.io/Team"]]);
    assert!(keys_of(&ring, "reg.io/team/x").is_empty());
}

#[test]
fn label_globs_are_go_filepath_match() {
    let cases = [
        // '?' starts the URL's query: this key is the host "r".
        ("r?g.io", "reg.io/x", false),
        ("r?g.io", "r/x", true),
        ("r[!a-c]g.io", "rxg.io/x", false),
        // A host starting with '[' must be an IP literal to url.Parse.
        ("[a-c]x.io", "bx.io/x", false),
        ("reg.[a-c]x.io", "reg.bx.io/x", true),
        // '^' is no host character to url.Parse: the key is dropped.
        ("reg.[^a]x.io", "reg.bx.io/x", false),
        // Nor is '\\': escapes never reach the glob.
        ("reg.\\io", "reg.io/x", false),
        // Malformed globs match nothing.
        ("reg.[a-.io", "reg.a.io/x", false),
        ("reg.i\\", "reg.i/x", false),
        // A bracketed host is not an address to SplitHostPort without a port.
        ("[::1]", "[::1]/x", false),
        ("[::1]:5000", "[::1]:5000/x", true),
        // A '[' elsewhere makes SplitHostPort fail: the port joins the last label.
        ("x.[ab].io:80", "x.a.io:80/x", false),
    ];
    for (key, name, hit) in cases {
        let ring = ring(&[&[key]]);
        assert_eq!(!keys_of(&ring, name).is_empty(), hit, "{key} for {name}");
    }
}

#[test]
fn lookup_normalizes_the_pod_image_first() {
    let ring = ring(&[
        &["docker.io/library", "reg.io/team"],
        &["https://index.docker.io/v1/"],
    ]);
    let keys = |image: &str| -> Vec<String> {
        ring.lookup(image)
            .unwrap()
            .into_iter()
            .map(|c| c.key().to_owned())
            .collect()
    };
    assert_eq!(keys("nginx:1.27"), ["docker.io/library"]);
    assert_eq!(
        keys("index.docker.io/library/nginx:latest"),
        ["docker.io/library"]
    );
    assert_eq!(keys("bitnami/redis"), ["https://index.docker.io/v1/"]);
    assert_eq!(keys("reg.io/team/api:v1"), ["reg.io/team"]);
    assert!(keys("reg.io/other").is_empty());
    assert!(ring.lookup("reg.io/Team").is_err());
}

#[test]
fn coverage_of_exact_hosts() {
    let ring = ring(&[&[
        "harbor.corp.example",
        "https://ghcr.io/acme",
        "*.dkr.ecr.eu-west-1.amazonaws.com",
        "reg.io:5000",
    ]]);
    let cases = [
        ("harbor.corp.example", true),
        ("Harbor.Corp.Example", true),
        ("harbor.corp.example:443", false),
        ("ghcr.io", false),
        ("123.dkr.ecr.eu-west-1.amazonaws.com", true),
        ("reg.io:5000", true),
        ("reg.io", false),
        ("docker.io", false),
        ("localhost", false),
    ];
    for (pattern, want) in cases {
        assert_eq!(ring.covers(pattern), want, "{pattern}");
    }
    let hub = super::tests::ring(&[&["https://index.docker.io/v1/"]]);
    for (pattern, want) in [
        ("docker.io", true),
        ("index.docker.io", true),
        ("localhost", true),
        ("localhost:5000", false),
        ("quay.io", false),
    ] {
        assert_eq!(hub.covers(pattern), want, "{pattern}");
    }
}

#[test]
fn coverage_of_wildcard_patterns() {
    let ring = ring(&[&[
        "a.corp.example",
        "*.build.example:5000",
        "x[0-9].lab.example",
        "reg-*.io",
    ]]);
    let cases = [
        ("*.corp.example", true),
        ("*.corp.example:5000", false),
        ("*.build.example:5000", true),
        ("*.build.example", false),
        ("*.*.example", true),
        ("x?.lab.example", true),
        ("xy*.lab.example", false),
        ("reg-*.io", true),
        ("q*.io", false),
        ("*-prod.io", true),
        ("*", false),
    ];
    for (pattern, want) in cases {
        assert_eq!(ring.covers(pattern), want, "{pattern}");
    }
    let hub = super::tests::ring(&[&["index.docker.io"]]);
    assert!(hub.covers("*.io"));
    assert!(hub.covers("*"));
    assert!(!hub.covers("*.io:5000"));
}

#[test]
fn label_intersection_agrees_with_enumeration() {
    // Every label of up to 3 characters from a small alphabet, against
    // pairs of globs: the search says "some label matches both" exactly
    // when enumeration finds one.
    let alphabet = ['a', 'b', '0', '-'];
    let mut labels = vec![String::new()];
    for len in 1..=3 {
        let mut next = Vec::new();
        for l in labels.iter().filter(|l| l.len() == len - 1) {
            for c in alphabet {
                next.push(format!("{l}{c}"));
            }
        }
        labels.extend(next);
    }
    let valid: Vec<&String> = labels
        .iter()
        .filter(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
        .collect();
    let policy = ["*", "a*", "*b", "?", "a?", "-*", "a-b", "*-*", "??", "b*a"];
    let globs = [
        "*", "[ab]", "[^a]*", "?-?", "a*", "\\a?", "[0-9]*", "*[", "b", "[a-]x", "*a*",
    ];
    for p in policy {
        for g in globs {
            let by_enumeration = valid.iter().any(|l| {
                policy_glob(p.as_bytes(), l.as_bytes())
                    && go::glob_match(g.as_bytes(), l.as_bytes()) == Ok(true)
            });
            if by_enumeration {
                assert!(labels_intersect(p.as_bytes(), g.as_bytes()), "{p} × {g}");
            } else {
                // Longer labels could still match both; check those too.
                let found = labels_intersect(p.as_bytes(), g.as_bytes());
                let long = ["aaaa", "a0b0", "b-ab", "abab", "a--b", "0000"];
                let by_long = long.iter().any(|l| {
                    policy_glob(p.as_bytes(), l.as_bytes())
                        && go::glob_match(g.as_bytes(), l.as_bytes()) == Ok(true)
                });
                assert_eq!(found, by_long, "{p} × {g}");
            }
        }
    }
}

#[test]
fn glob_matching_never_panics_on_odd_bytes() {
    let patterns: [&[u8]; 8] = [
        b"[",
        b"\\",
        b"[\xff]",
        b"[a-\xe2\x82]",
        b"?",
        b"*\xff*",
        b"[^]a]",
        b"[]a]",
    ];
    let names: [&[u8]; 5] = [b"", b"\xff", b"\xe2\x82", b"a/b", b"]"];
    for p in patterns {
        for n in names {
            let _ = go::glob_match(p, n);
        }
    }
}

#[test]
fn policy_globs_match_as_globs_do_and_many_stars_take_no_time() {
    for (pattern, text, matches) in [
        ("", "", true),
        ("", "a", false),
        ("*", "", true),
        ("*", "abc", true),
        ("a*", "abc", true),
        ("*c", "abc", true),
        ("*b*", "abc", true),
        ("a*c", "ac", true),
        ("a*c", "ab", false),
        ("?", "", false),
        ("?", "a", true),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("*a*a", "aaa", true),
        ("*ab", "aab", true),
        ("*ab*ab", "abab", true),
        ("*ab*ab", "abaab", true),
        ("*ab*ab", "aba", false),
        ("a**b", "ab", true),
        ("**", "", true),
        ("b*a", "ba", true),
        ("b*a", "bab", false),
    ] {
        assert_eq!(
            policy_glob(pattern.as_bytes(), text.as_bytes()),
            matches,
            "{pattern:?} vs {text:?}"
        );
    }
    // Tried split by split, 60 stars before a byte the text lacks took
    // exponential time (the fuzz target's timeout input).
    let stars = format!("{}A", "*".repeat(60));
    assert!(!policy_glob(stars.as_bytes(), "a".repeat(40).as_bytes()));
    assert!(policy_glob(
        stars.as_bytes(),
        format!("{}A", "a".repeat(40)).as_bytes()
    ));
}
