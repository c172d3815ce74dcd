//! The table pins Go's answers; the differential test compares the parser
//! with a regex transcription of the Go code on generated inputs. For a
//! longer run: `IMAGE_REF_CASES=5000000 IMAGE_REF_SEED=7 cargo test
//! --release generated`.
use super::*;

/// What Go returns: `(Domain, Path, Tag, Digest)` or the error text.
type Outcome = Result<(String, String, Option<String>, Option<String>), String>;

fn outcome(input: &str) -> Outcome {
    fields(&parse(input))
}

fn fields(parsed: &Result<Reference<'_>, ParseImageRefError>) -> Outcome {
    parsed
        .as_ref()
        .map(|r| {
            (
                r.registry().to_owned(),
                r.repository().to_owned(),
                r.tag().map(str::to_owned),
                r.digest().map(str::to_owned),
            )
        })
        .map_err(|e| e.to_string())
}

const HEX64: &str = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";

fn ok(input: &str, registry: &str, repository: &str, tag: &str, digest: &str) -> (String, Outcome) {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let want = (
        registry.to_owned(),
        repository.to_owned(),
        some(tag),
        some(digest),
    );
    (input.to_owned(), Ok(want))
}

fn err(input: &str, message: &str) -> (String, Outcome) {
    (input.to_owned(), Err(message.to_owned()))
}

const INVALID: &str = "invalid reference format";
const UPPERCASE: &str = "repository name must be lowercase";
const TOO_LONG: &str = "repository name must not be more than 255 characters";
const DIGEST_FORMAT: &str = "invalid checksum digest format";
const DIGEST_LENGTH: &str = "invalid checksum digest length";
const UNSUPPORTED: &str = "unsupported digest algorithm";

fn not_lowercase(remote: &str) -> String {
    format!("invalid reference format: repository name ({remote}) must be lowercase")
}

/// Input and what Go's `ParseNormalizedNamed` gives for it. Rows whose
/// outcome is not obvious say how it follows from the Go source.
#[rustfmt::skip]
fn table() -> Vec<(String, Outcome)> {
    let d256 = format!("sha256:{HEX64}");
    let d384 = format!("sha384:{}", "c".repeat(96));
    let d512 = format!("sha512:{}", "f".repeat(128));
    let hex = |n: usize| HEX64.repeat(3)[..n].to_owned();
    let path255 = format!("{}a", "a/".repeat(127));
    let path256 = format!("{}ab", "a/".repeat(127));
    vec![
        // Docker Hub and its familiar forms.
        ok("nginx", "docker.io", "library/nginx", "", ""),
        ok("nginx:1.25", "docker.io", "library/nginx", "1.25", ""),
        ok("nginx:latest", "docker.io", "library/nginx", "latest", ""),
        ok("library/nginx", "docker.io", "library/nginx", "", ""),
        ok("docker.io/nginx", "docker.io", "library/nginx", "", ""),
        ok("docker.io/library/nginx", "docker.io", "library/nginx", "", ""),
        ok("index.docker.io/nginx", "docker.io", "library/nginx", "", ""),
        ok("index.docker.io/library/nginx", "docker.io", "library/nginx", "", ""),
        ok("index.docker.io/a/b", "docker.io", "a/b", "", ""),
        ok("docker.io/a/b", "docker.io", "a/b", "", ""),
        ok("user/repo", "docker.io", "user/repo", "", ""),
        ok("user/repo:v1", "docker.io", "user/repo", "v1", ""),
        ok("a", "docker.io", "library/a", "", ""),
        ok("a/b/c/d/e", "docker.io", "a/b/c/d/e", "", ""),
        ok("library/foo/bar", "docker.io", "library/foo/bar", "", ""),
        // A bare host is a one-segment Hub name; its port becomes a tag.
        ok("docker.io", "docker.io", "library/docker.io", "", ""),
        ok("index.docker.io", "docker.io", "library/index.docker.io", "", ""),
        ok("192.168.1.1", "docker.io", "library/192.168.1.1", "", ""),
        ok("foo.com:5000", "docker.io", "library/foo.com", "5000", ""),
        // localhost.
        ok("localhost/x", "localhost", "x", "", ""),
        ok("localhost:5000/x", "localhost:5000", "x", "", ""),
        ok("localhost/a/b:t", "localhost", "a/b", "t", ""),
        ok("localhost", "docker.io", "library/localhost", "", ""),
        ok("localhost:5000", "docker.io", "library/localhost", "5000", ""),
        ok("LOCALHOST/x", "LOCALHOST", "x", "", ""), // not "localhost", but upper-case
        err("localhost:abc/x", INVALID),             // bad port, and ':' is no path
        err("localhost:/x", INVALID),
        // Hosts told apart by ':' and '.'.
        ok("app:5000/x", "app:5000", "x", "", ""),
        ok("app:5000", "docker.io", "library/app", "5000", ""),
        ok("a.com:0/x", "a.com:0", "x", "", ""),
        err("a.com:5000:6000/x", INVALID),
        err("a:b/c", INVALID), // "a:b" is picked as a domain, but its port is not digits
        err("fc00::1:5000/debian", INVALID),
        ok("127.0.0.1:8000/private/moonbase", "127.0.0.1:8000", "private/moonbase", "", ""),
        ok("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", "5050", ""),
        ok("test-com:8080/foo", "test-com:8080", "foo", "", ""),
        ok("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo", "", ""),
        ok("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", "xn--n3h.com", ""),
        ok("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux", "some-long-tag", ""),
        ok("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io", "test.example.com/my-app", "test.example.com", ""),
        // Upper-case first segment: a host, case kept.
        ok("Foo/bar", "Foo", "bar", "", ""),
        ok("FOO/bar", "FOO", "bar", "", ""),
        ok("Docker/docker", "Docker", "docker", "", ""),
        ok("UPPER.com/x", "UPPER.com", "x", "", ""),
        ok("Harbor.Corp:5000/library/app:v2", "Harbor.Corp:5000", "library/app", "v2", ""),
        // Upper case in the repository: the remote-name check, whose message
        // carries the remote up to the first ':' (with "library/" if added).
        err("foo/Bar", &not_lowercase("foo/Bar")),
        err("Nginx", &not_lowercase("library/Nginx")),
        err("Uppercase:tag", &not_lowercase("library/Uppercase")),
        err("docker.io/Foo", &not_lowercase("library/Foo")),
        err("docker.io/Foo/bar", &not_lowercase("Foo/bar")),
        err("localhost:5000/Foo", &not_lowercase("Foo")),
        err("test:5000/Uppercase/lowercase:tag", &not_lowercase("Uppercase/lowercase")),
        ok("lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase", ""),
        // The remote runs to the first ':', which here is inside the digest.
        err(&format!("nginx@SHA256:{HEX64}"), &not_lowercase("library/nginx@SHA256")),
        // Upper case outside the remote: Parse fails, its lower-cased input
        // matches, hence ErrNameContainsUppercase.
        err("Foo_bar/x", UPPERCASE),
        err("Foo_bar.com/x", UPPERCASE),
        // First segment picked as a domain, refused by the domain grammar
        // but a valid path component: Go keeps it in the path, no domain.
        ok("foo_bar.com/x", "", "foo_bar.com/x", "", ""),
        ok("foo_bar.com/x:1", "", "foo_bar.com/x", "1", ""),
        ok(&format!("foo__bar.com/x@{d256}"), "", "foo__bar.com/x", "", &d256),
        err("foo_bar.com:5000/x", INVALID), // ':' fits neither grammar
        ok("test_com/foo", "docker.io", "test_com/foo", "", ""), // no '.': not a domain
        ok("foo_bar.com", "docker.io", "library/foo_bar.com", "", ""),
        ok("foo_bar.com:8080", "docker.io", "library/foo_bar.com", "8080", ""),
        ok("foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", "8080", ""),
        // Digests.
        ok(&format!("nginx@{d256}"), "docker.io", "library/nginx", "", &d256),
        ok(&format!("nginx:1.25@{d256}"), "docker.io", "library/nginx", "1.25", &d256),
        ok(&format!("docker.io/library/nginx:latest@{d256}"), "docker.io", "library/nginx", "latest", &d256),
        ok(&format!("nginx@{d384}"), "docker.io", "library/nginx", "", &d384),
        ok(&format!("nginx:t@{d512}"), "docker.io", "library/nginx", "t", &d512),
        err(&format!("nginx@sha256:{}", hex(63)), DIGEST_LENGTH),
        err(&format!("nginx@sha256:{}", hex(65)), DIGEST_LENGTH),
        err(&format!("nginx@sha256:{}", hex(32)), DIGEST_LENGTH),
        err(&format!("nginx:t@sha512:{HEX64}"), DIGEST_LENGTH),
        err(&format!("nginx@sha384:{HEX64}"), DIGEST_LENGTH),
        err(&format!("nginx@sha256:{}", hex(31)), INVALID), // grammar needs 32+ hex
        err(&format!("nginx@sha256:{}", HEX64.to_uppercase()), DIGEST_FORMAT),
        err(&format!("nginx:t@sha256:{}", "A".repeat(64)), DIGEST_FORMAT),
        err(&format!("nginx@md5:{}", hex(32)), UNSUPPORTED),
        err(&format!("nginx@sha257:{HEX64}"), UNSUPPORTED),
        err(&format!("nginx@sha256+b64:{HEX64}"), UNSUPPORTED),
        err(&format!("nginx@a.b+c_d-e:{}", hex(32)), UNSUPPORTED),
        err(&format!("nginx@md5:{}", "ABCDEF".repeat(6)), UNSUPPORTED), // go-digest allows A-F there
        // An unknown algorithm with upper case fails go-digest's own regexp.
        err(&format!("nginx:t@SHA256:{HEX64}"), DIGEST_FORMAT),
        err(&format!("nginx:t@Md5:{}", hex(32)), DIGEST_FORMAT),
        err("nginx@sha256:", INVALID),
        err(&format!("nginx@:{HEX64}"), INVALID),
        err(&format!("nginx@sha256-:{HEX64}"), INVALID),
        err(&format!("nginx@1sha:{HEX64}"), INVALID),
        err(&format!("nginx@{d256}@{d256}"), INVALID),
        err(&format!("nginx@{d256}g"), INVALID),
        err(&format!("@{d256}"), INVALID),
        ok(&format!("test:5000/repo:tag@{d256}"), "test:5000", "repo", "tag", &d256),
        // 64 lower-case hex digits alone are an image ID.
        err(HEX64, &format!("invalid repository name ({HEX64}), cannot specify 64-byte hexadecimal strings")),
        ok(&hex(63), "docker.io", &format!("library/{}", hex(63)), "", ""),
        ok(&hex(65), "docker.io", &format!("library/{}", hex(65)), "", ""),
        ok(&format!("docker.io/{HEX64}"), "docker.io", &format!("library/{HEX64}"), "", ""),
        ok(&format!("{HEX64}:tag"), "docker.io", &format!("library/{HEX64}"), "tag", ""),
        err(&HEX64.to_uppercase(), &not_lowercase(&format!("library/{}", HEX64.to_uppercase()))),
        // IPv6.
        ok("[::1]:5000/x", "[::1]:5000", "x", "", ""),
        ok("[::1]/x", "[::1]", "x", "", ""),
        ok("[FE80::1]:5000/x", "[FE80::1]:5000", "x", "", ""),
        ok("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", "tag", ""),
        err("[fe80::1%eth0]/x", INVALID),
        err("[fe80::1%eth0]:5000/debian", INVALID),
        err("[2001:db8:3:4::192.0.2.33]:5000/debian", INVALID),
        err("[::1]", INVALID),
        err("[::1]:5000", INVALID),
        err("[::1/x", INVALID),
        err("[]/x", INVALID), // no '.', ':' or upper case: a Hub path, and '[' fails it
        // The 255-byte limit applies to the path only, "library/" included.
        ok(&path255, "docker.io", &path255, "", ""),
        err(&path256, TOO_LONG),
        ok(&"a".repeat(247), "docker.io", &format!("library/{}", "a".repeat(247)), "", ""),
        err(&"a".repeat(248), TOO_LONG),
        err(&format!("docker.io/{}", "a".repeat(248)), TOO_LONG),
        ok(&format!("example.com/{path255}"), "example.com", &path255, "", ""),
        err(&format!("example.com/{path256}"), TOO_LONG),
        ok(&format!("foo_bar.com/{}", "a".repeat(243)), "", &format!("foo_bar.com/{}", "a".repeat(243)), "", ""),
        err(&format!("foo_bar.com/{}", "a".repeat(244)), TOO_LONG),
        // The length is checked before the digest.
        err(&format!("{path256}@md5:{}", hex(32)), TOO_LONG),
        // Tags: at most 128 bytes, starting with a word character.
        ok(&format!("nginx:{}", "a".repeat(128)), "docker.io", "library/nginx", &"a".repeat(128), ""),
        err(&format!("nginx:{}", "a".repeat(129)), INVALID),
        ok("nginx:_tag", "docker.io", "library/nginx", "_tag", ""),
        ok("nginx:T-1.2_x", "docker.io", "library/nginx", "T-1.2_x", ""),
        err("nginx:-tag", INVALID),
        err("nginx:.tag", INVALID),
        err("nginx:", INVALID),
        err("nginx:latest:latest", INVALID),
        err("a.com/b:c/d", INVALID),
        // Empty, blank and partial inputs.
        err("", INVALID), // Go's Parse sees "docker.io/library/", not ""
        err(" nginx", INVALID),
        err("nginx ", INVALID),
        err("nginx:1.25\n", INVALID),
        err(":tag", INVALID),
        err("/", INVALID),
        err("/x", INVALID),
        err("x.com/", INVALID),
        err("a//b", INVALID),
        err("a/b/", INVALID),
        err("docker///docker", INVALID),
        err("https://github.com/docker/docker", INVALID),
        err("aa/asdf$$^/aa", INVALID),
        // Path component separators.
        ok("a__b", "docker.io", "library/a__b", "", ""),
        ok("a_b.c-d", "docker.io", "library/a_b.c-d", "", ""),
        ok("a--b", "docker.io", "library/a--b", "", ""),
        ok("a---b/c", "docker.io", "a---b/c", "", ""),
        err("a___b", INVALID),
        err("a-.b", INVALID),
        err("a._b", INVALID),
        err("a..b", INVALID),
        err("a_-b", INVALID),
        err("-a", INVALID),
        err("a-", INVALID),
        err("_a", INVALID),
        err("-docker/docker", INVALID),
        err("docker-/docker", INVALID),
        err("____/____", INVALID),
        // Hosts with dashes at the edges of a label.
        err("-foo.com/x", INVALID),
        err("foo-.com/x", INVALID),
        err("foo.-com/x", INVALID),
        ok("foo--bar.com/x", "foo--bar.com", "x", "", ""),
        ok("a-b.c/x", "a-b.c", "x", "", ""),
        // Registries seen in the wild.
        ok("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1.0", "123456789012.dkr.ecr.us-east-1.amazonaws.com", "team/app", "1.0", ""),
        ok("gcr.io/project-id/image:tag", "gcr.io", "project-id/image", "tag", ""),
        ok(&format!("us-docker.pkg.dev/proj/repo/img@{d256}"), "us-docker.pkg.dev", "proj/repo/img", "", &d256),
        ok("myregistry.azurecr.io/samples/nginx:latest", "myregistry.azurecr.io", "samples/nginx", "latest", ""),
        ok("ghcr.io/owner/repo:sha-abc123", "ghcr.io", "owner/repo", "sha-abc123", ""),
        ok("quay.io/prometheus/node-exporter:v1.7.0", "quay.io", "prometheus/node-exporter", "v1.7.0", ""),
        ok("registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", "3.9", ""),
        ok("mcr.microsoft.com/dotnet/aspnet:8.0", "mcr.microsoft.com", "dotnet/aspnet", "8.0", ""),
        ok("harbor.corp.example:8443/proj/app:v2.1.0-rc.1", "harbor.corp.example:8443", "proj/app", "v2.1.0-rc.1", ""),
        // Unicode: Go strings are bytes, so it never fits the grammar, but
        // Go's case checks are Unicode-wide.
        err("ñginx", INVALID),
        err("nginx:ünicode", INVALID),
        err("☃.com/x", INVALID),
        err("Ñginx", &not_lowercase("library/Ñginx")),
        err("x/İ", &not_lowercase("x/İ")),
        err("\u{212A}", &not_lowercase("library/\u{212A}")),
        err("É/foo", INVALID), // a "domain" since it has upper case; "é/foo" fails too
        // Go lowers İ (U+0130) to "i" and the Kelvin sign to "k", so these
        // match once lower-cased.
        err("\u{212A}.com/x", UPPERCASE),
        err("İ/x", UPPERCASE),
        err("nginx:İ", UPPERCASE),
        err("nginx:É", INVALID),
        // U+1C89 is a capital only since Unicode 16; Go's tables are 15.0.
        err("\u{1C89}", INVALID),
        err("a/\u{A7CB}", INVALID),
    ]
}

#[test]
fn table_matches_go() {
    let table = table();
    assert!(table.len() >= 100, "{} rows", table.len());
    assert_eq!(HEX64.len(), 64);
    for (input, want) in &table {
        assert_eq!(&outcome(input), want, "input {input:?}");
    }
}

#[test]
fn table_agrees_with_the_regex_oracle() {
    for (input, want) in &table() {
        assert_eq!(
            &go::parse_normalized_named(input),
            want,
            "oracle, input {input:?}"
        );
    }
}

/// SplitMix64: a small seeded generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'t>(&mut self, items: &[&'t str]) -> &'t str {
        items[self.below(items.len())]
    }
    fn hex(&mut self, len: usize, upper: bool) -> String {
        let digits = if upper {
            "0123456789ABCDEF"
        } else {
            "0123456789abcdef"
        };
        (0..len)
            .map(|_| char::from(digits.as_bytes()[self.below(16)]))
            .collect()
    }
}

/// Pieces for token soup and mutations, biased toward the grammar's
/// delimiters and the names normalization treats specially.
#[rustfmt::skip]
const PIECES: &[&str] = &[
    "a", "b", "x", "z", "e", "f", "0", "1", "9", "A", "F", "Z", ".", ".", ":", ":", "/", "/",
    "/", "@", "_", "-", "[", "]", "%", "__", "--", " ", "5000", "::1", "com", "library/",
    "sha256:", "sha384:", "sha512:", "md5:", "SHA256:", "sha256+b64:",
    "localhost", "docker.io", "index.docker.io", "İ", "\u{212A}", "é", "É", "☃",
];
#[rustfmt::skip]
const HOSTS: &[&str] = &[
    "localhost", "localhost:5000", "docker.io", "index.docker.io", "example.com", "Harbor.Corp:5000",
    "[::1]:5000", "[fe80::1%eth0]", "[FE80::1]", "foo_bar.com", "Foo", "a-.com",
    "app:5000", "127.0.0.1:8080", "ghcr.io", "Foo_bar", "user",
];
#[rustfmt::skip]
const ALGORITHMS: &[&str] = &[
    "sha256", "sha384", "sha512", "md5", "SHA256", "sha256+b64", "a.b", "Sha512",
];
const HEX_LENGTHS: &[usize] = &[31, 32, 63, 64, 65, 95, 96, 128, 129];

fn token_soup(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..1 + rng.below(12) {
        if rng.chance(5) {
            let len = HEX_LENGTHS[rng.below(HEX_LENGTHS.len())];
            let upper = rng.chance(20);
            s.push_str(&rng.hex(len, upper));
        } else {
            s.push_str(rng.pick(PIECES));
        }
    }
    s
}

fn path_component(rng: &mut Rng) -> String {
    let long = rng.chance(15);
    let runs = if long {
        1 + rng.below(4)
    } else {
        1 + rng.below(2)
    };
    let mut c = String::new();
    for i in 0..runs {
        if i > 0 {
            c.push_str(rng.pick(&[".", "_", "__", "-", "--", ".", "_", "-", "___", "-."]));
        }
        let len = if long {
            1 + rng.below(80)
        } else {
            1 + rng.below(6)
        };
        c.extend((0..len).map(|_| char::from(b"abcxyz0189"[rng.below(10)])));
    }
    c
}

/// A plausible reference, then a few random edits.
fn structured(rng: &mut Rng) -> String {
    let mut s = String::new();
    if rng.chance(50) {
        s.push_str(rng.pick(HOSTS));
        s.push('/');
    }
    for i in 0..1 + rng.below(4) {
        if i > 0 {
            s.push('/');
        }
        s.push_str(&path_component(rng));
    }
    if rng.chance(40) {
        s.push(':');
        let len = if rng.chance(20) {
            125 + rng.below(6)
        } else {
            1 + rng.below(8)
        };
        s.extend((0..len).map(|_| char::from(b"aZ09_.-"[rng.below(7)])));
    }
    if rng.chance(30) {
        let len = HEX_LENGTHS[rng.below(HEX_LENGTHS.len())];
        let upper = rng.chance(10);
        s.push('@');
        s.push_str(rng.pick(ALGORITHMS));
        s.push(':');
        s.push_str(&rng.hex(len, upper));
    }
    let edits = if rng.chance(50) { 0 } else { 1 + rng.below(2) };
    for _ in 0..edits {
        // Insert a piece at a random char boundary, or overwrite one char.
        let mut at = rng.below(s.len() + 1);
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        let end = match s[at..].chars().next() {
            Some(c) if rng.chance(50) => at + c.len_utf8(),
            _ => at,
        };
        s.replace_range(at..end, rng.pick(PIECES));
    }
    s
}

/// An Ok reference must read back the same from its `Display` form.
fn assert_round_trips(reference: &Reference<'_>) {
    let printed = reference.to_string();
    assert_eq!(
        parse(&printed).as_ref(),
        Ok(reference),
        "printed as {printed:?}"
    );
}

#[test]
fn generated_inputs_agree_with_the_regex_oracle() {
    let cases = std::env::var("IMAGE_REF_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(150_000);
    let seed = std::env::var("IMAGE_REF_SEED")
        .ok()
        .and_then(|n| n.parse().ok());
    let mut rng = Rng(seed.unwrap_or(0x5EED_1A6E));
    let (mut oks, mut errors) = (0usize, std::collections::BTreeMap::<String, usize>::new());
    let mut common_hits = 0usize;
    for _ in 0..cases {
        let input = if rng.chance(35) {
            token_soup(&mut rng)
        } else {
            structured(&mut rng)
        };
        let parsed = parse(&input);
        assert_eq!(
            fields(&parsed),
            go::parse_normalized_named(&input),
            "input {input:?}"
        );
        if let Some(common) = parse_common(&input) {
            assert_eq!(Ok(common), parse_full(&input), "common parse of {input:?}");
            common_hits += 1;
        }
        match parsed {
            Ok(reference) => {
                assert_round_trips(&reference);
                oks += 1;
            }
            Err(e) => {
                let kind = e
                    .to_string()
                    .split(" (")
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                *errors.entry(kind).or_default() += 1;
            }
        }
    }
    // The generator must reach every outcome, or the comparison proves little.
    assert!(oks > cases / 10, "only {oks} Ok of {cases}");
    assert!(errors.len() >= 8, "outcomes seen: {errors:?}");
    assert!(
        common_hits > oks / 4,
        "the common parse answered {common_hits} of {oks} Ok"
    );
    eprintln!("{oks} ok ({common_hits} by the common parse), {errors:?}");
}

/// Where the one-pass parse answers, it answers exactly as the full
/// grammar does; and it answers for the references pods usually name.
#[test]
fn common_parse_is_the_full_parse() {
    for (input, _) in table() {
        if let Some(common) = parse_common(&input) {
            assert_eq!(Ok(common), parse_full(&input), "input {input:?}");
        }
    }
    let digest = format!("sha256:{HEX64}");
    let usual = [
        "nginx".to_owned(),
        "nginx:1.27".to_owned(),
        "library/nginx:1.27-alpine".to_owned(),
        "docker.io/nginx".to_owned(),
        "index.docker.io/library/busybox:latest".to_owned(),
        "team-a/api:v1.2.3-RC1".to_owned(),
        "harbor.corp.example/team-a/api:1.4.2".to_owned(),
        "registry.corp.example:5000/a/b/c_d__e-f--g.h:tag_1".to_owned(),
        "localhost/x".to_owned(),
        "localhost:5000/x:1".to_owned(),
        "123456789012.dkr.ecr.us-west-2.amazonaws.com/app:1".to_owned(),
        format!("ghcr.io/acme/exporter@{digest}"),
        format!("ghcr.io/acme/exporter:1.0@{digest}"),
        format!("busybox@{digest}"),
    ];
    for input in &usual {
        let common = parse_common(input);
        assert!(common.is_some(), "{input:?} takes the full parse");
        assert_eq!(
            common.ok_or(()),
            parse_full(input).map_err(|_| ()),
            "{input:?}"
        );
    }
    // Whatever is unusual goes to the full grammar, valid or not.
    for input in [
        "Foo/bar",
        "foo_bar.com/x",
        "[::1]:5000/x",
        "a.com/B",
        "a.com/b:c:d",
        "a.com/b:c/d",
        "a.com//b",
        "nginx@sha512:0",
        "ünïcode/x",
        HEX64,
        "",
    ] {
        assert_eq!(parse_common(input), None, "{input:?}");
    }
}

#[test]
fn table_round_trips() {
    for (input, _) in table() {
        if let Ok(reference) = parse(&input) {
            assert_round_trips(&reference);
        }
    }
}

#[test]
fn display_is_go_string() {
    let shown = |s: &str| parse(s).map(|r| r.to_string());
    assert_eq!(shown("nginx"), Ok("docker.io/library/nginx".to_owned()));
    assert_eq!(shown("Foo/bar:1"), Ok("Foo/bar:1".to_owned()));
    assert_eq!(shown("foo_bar.com/x:1"), Ok("foo_bar.com/x:1".to_owned()));
    let digest = format!("sha256:{HEX64}");
    assert_eq!(
        shown(&format!("index.docker.io/busybox:latest@{digest}")),
        Ok(format!("docker.io/library/busybox:latest@{digest}"))
    );
}

#[test]
fn borrows_unless_library_is_prepended() {
    for input in ["docker.io/library/nginx:1.25", "ghcr.io/a/b", "user/repo"] {
        assert!(
            matches!(parse(input).unwrap().path, Cow::Borrowed(_)),
            "{input}"
        );
    }
    for input in ["nginx", "docker.io/nginx", "foo_bar.com/x"] {
        assert!(
            matches!(parse(input).unwrap().path, Cow::Owned(_)),
            "{input}"
        );
    }
}

/// Go (Unicode 15.0) lower-cases exactly 1433 characters: those with a
/// simple lower-case mapping in UnicodeData.txt 15.0.0. A toolchain with
/// newer Unicode tables that breaks this needs `CASED_AFTER_UNICODE_15`
/// extended.
#[test]
fn case_mapping_is_go_unicode_15() {
    let mut upper = 0;
    for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
        if has_uppercase(c.encode_utf8(&mut [0; 4])) {
            upper += 1;
        }
    }
    assert_eq!(upper, 1433);
    assert!(has_uppercase("\u{212A}") && has_uppercase("İ") && has_uppercase("Σ"));
    assert!(!has_uppercase("\u{1C89}") && !has_uppercase("\u{10D50}") && !has_uppercase("ß"));
}

#[test]
fn never_panics_on_hostile_input() {
    let huge = [
        "a".repeat(1 << 20),
        "/".repeat(1 << 16),
        ":".repeat(1 << 16),
        "@".repeat(1 << 16),
        format!("{}@sha256:{}", "a/".repeat(1 << 15), "f".repeat(1 << 16)),
        "İ".repeat(1 << 15),
        "\u{10FFFF}\u{0}\u{7F}\u{FEFF}".repeat(100),
    ];
    for input in &huge {
        let _ = parse(input);
    }
    for c in (0..0x11_0000).step_by(97).filter_map(char::from_u32) {
        for input in [
            format!("{c}"),
            format!("a{c}/b"),
            format!("a.com/b:{c}"),
            format!("{c}/b"),
        ] {
            assert_eq!(
                outcome(&input),
                go::parse_normalized_named(&input),
                "input {input:?}"
            );
        }
    }
}

/// A literal transcription of distribution/reference v0.6 and go-digest
/// v1.0.0, built from the same regular expressions (the `regex` crate
/// resolves submatches leftmost-first, as Go's `regexp` does).
mod go {
    use super::Outcome;
    use regex::{Regex, RegexBuilder};
    use std::sync::OnceLock;

    const ALPHANUMERIC: &str = r"[a-z0-9]+";
    const SEPARATOR: &str = r"(?:[._]|__|[-]+)";
    const LOCALHOST: &str = "localhost";
    const DOMAIN_NAME_COMPONENT: &str = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
    const OPTIONAL_PORT: &str = r"(?::[0-9]+)?";
    const TAG: &str = r"[\w][\w.-]{0,127}";
    const DIGEST_PAT: &str =
        r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
    const IDENTIFIER: &str = r"([a-f0-9]{64})";
    const IPV6_ADDRESS: &str = r"\[(?:[a-fA-F0-9:]+)\]";
    /// go-digest's DigestRegexp.
    const GO_DIGEST: &str = r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+";

    const DEFAULT_DOMAIN: &str = "docker.io";
    const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
    const OFFICIAL_REPO_PREFIX: &str = "library/";

    const ERR_REFERENCE_INVALID_FORMAT: &str = "invalid reference format";
    const ERR_NAME_CONTAINS_UPPERCASE: &str = "repository name must be lowercase";
    const ERR_NAME_EMPTY: &str = "repository name must have at least one component";
    const ERR_NAME_TOO_LONG: &str = "repository name must not be more than 255 characters";
    const ERR_DIGEST_INVALID_FORMAT: &str = "invalid checksum digest format";
    const ERR_DIGEST_INVALID_LENGTH: &str = "invalid checksum digest length";
    const ERR_DIGEST_UNSUPPORTED: &str = "unsupported digest algorithm";

    fn optional(res: &[&str]) -> String {
        format!("(?:{})?", res.concat())
    }
    fn any_times(res: &[&str]) -> String {
        format!("(?:{})*", res.concat())
    }
    fn capture(res: &[&str]) -> String {
        format!("({})", res.concat())
    }
    fn anchored(res: &[&str]) -> String {
        format!("^{}$", res.concat())
    }
    fn compile(pattern: &str) -> Regex {
        // Go's \w and [[:xdigit:]] are ASCII-only.
        RegexBuilder::new(pattern)
            .unicode(false)
            .build()
            .expect("pattern compiles")
    }

    struct Regexps {
        reference: Regex,
        anchored_name: Regex,
        anchored_identifier: Regex,
        go_digest_anchored: Regex,
        /// go-digest's available algorithms: name, hash size, encoded form.
        algorithms: Vec<(&'static str, usize, Regex)>,
    }

    fn regexps() -> &'static Regexps {
        static REGEXPS: OnceLock<Regexps> = OnceLock::new();
        REGEXPS.get_or_init(|| {
            let domain_name = format!("{DOMAIN_NAME_COMPONENT}(?:\\.{DOMAIN_NAME_COMPONENT})*");
            let host = format!("(?:{domain_name}|{IPV6_ADDRESS})");
            let domain_and_port = format!("{host}{OPTIONAL_PORT}");
            let path_component = format!("{ALPHANUMERIC}{}", any_times(&[SEPARATOR, ALPHANUMERIC]));
            let remote_name = format!("{path_component}{}", any_times(&["/", &path_component]));
            let name_pat = format!("{}{remote_name}", optional(&[&domain_and_port, "/"]));
            let anchored_name_pat = anchored(&[
                &optional(&[&capture(&[&domain_and_port]), "/"]),
                &capture(&[&remote_name]),
            ]);
            let reference_pat = anchored(&[
                &capture(&[&name_pat]),
                &optional(&[":", &capture(&[TAG])]),
                &optional(&["@", &capture(&[DIGEST_PAT])]),
            ]);
            Regexps {
                reference: compile(&reference_pat),
                anchored_name: compile(&anchored_name_pat),
                anchored_identifier: compile(&anchored(&[IDENTIFIER])),
                go_digest_anchored: compile(&anchored(&[GO_DIGEST])),
                algorithms: vec![
                    ("sha256", 32, compile("^[a-f0-9]{64}$")),
                    ("sha384", 48, compile("^[a-f0-9]{96}$")),
                    ("sha512", 64, compile("^[a-f0-9]{128}$")),
                ],
            }
        })
    }

    /// Go's `strings.ToLower`: Unicode 15.0 simple case mapping, under
    /// which U+0130 lowers to a plain `i`.
    fn to_lower(s: &str) -> String {
        if s.is_ascii() {
            return s.to_ascii_lowercase();
        }
        s.chars()
            .map(|c| match c {
                '\u{130}' => 'i',
                _ if super::super::cased_after_unicode_15(c) => c,
                _ => c.to_lowercase().next().unwrap_or(c),
            })
            .collect()
    }

    pub fn parse_normalized_named(s: &str) -> Outcome {
        if regexps().anchored_identifier.is_match(s) {
            return Err(format!(
                "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
            ));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote = match remainder.find(':') {
            Some(tag_sep) => &remainder[..tag_sep],
            None => &remainder[..],
        };
        if to_lower(remote) != remote {
            return Err(format!(
                "invalid reference format: repository name ({remote}) must be lowercase"
            ));
        }
        parse(&format!("{domain}/{remainder}"))
    }

    // Case by case as in Go's switch, though two cases share a body.
    #[allow(clippy::if_same_then_else)]
    fn split_docker_domain(name: &str) -> (String, String) {
        let Some((maybe_domain, maybe_remote_name)) = name.split_once('/') else {
            return (
                DEFAULT_DOMAIN.into(),
                format!("{OFFICIAL_REPO_PREFIX}{name}"),
            );
        };
        let (domain, mut remote_name) = if maybe_domain == LOCALHOST {
            (maybe_domain, maybe_remote_name.to_owned())
        } else if maybe_domain == LEGACY_DEFAULT_DOMAIN {
            (DEFAULT_DOMAIN, maybe_remote_name.to_owned())
        } else if maybe_domain.contains(['.', ':']) {
            (maybe_domain, maybe_remote_name.to_owned())
        } else if to_lower(maybe_domain) != maybe_domain {
            (maybe_domain, maybe_remote_name.to_owned())
        } else {
            (DEFAULT_DOMAIN, name.to_owned())
        };
        if domain == DEFAULT_DOMAIN && !remote_name.contains('/') {
            remote_name = format!("{OFFICIAL_REPO_PREFIX}{remote_name}");
        }
        (domain.to_owned(), remote_name)
    }

    fn parse(s: &str) -> Outcome {
        let re = regexps();
        if s.is_empty() {
            return Err(ERR_NAME_EMPTY.into());
        }
        let Some(matches) = re.reference.captures(s) else {
            let sl = to_lower(s);
            if sl != s && re.reference.captures(&sl).is_some() {
                return Err(ERR_NAME_CONTAINS_UPPERCASE.into());
            }
            return Err(ERR_REFERENCE_INVALID_FORMAT.into());
        };
        let group = |i: usize| matches.get(i).map_or("", |m| m.as_str());
        let (domain, path) = match re.anchored_name.captures(group(1)) {
            Some(name_match) => (
                name_match.get(1).map_or("", |m| m.as_str()),
                name_match.get(2).map_or("", |m| m.as_str()),
            ),
            None => ("", group(1)),
        };
        if path.len() > 255 {
            return Err(ERR_NAME_TOO_LONG.into());
        }
        let (tag, digest) = (group(2), group(3));
        if !digest.is_empty() {
            validate_digest(digest)?;
        }
        // getBestReferenceType, then ParseNormalizedNamed's Named check.
        if domain.is_empty() && path.is_empty() {
            if !digest.is_empty() {
                return Err(format!("reference {digest} has no name"));
            }
            return Err(ERR_NAME_EMPTY.into());
        }
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Ok((domain.into(), path.into(), some(tag), some(digest)))
    }

    /// go-digest v1.0.0 `Digest.Validate` and `Algorithm.Validate`.
    fn validate_digest(s: &str) -> Result<(), String> {
        let re = regexps();
        let i = match s.find(':') {
            Some(i) if i > 0 && i + 1 != s.len() => i,
            _ => return Err(ERR_DIGEST_INVALID_FORMAT.into()),
        };
        let (algorithm, encoded) = (&s[..i], &s[i + 1..]);
        let Some((_, size, encoded_re)) = re.algorithms.iter().find(|a| a.0 == algorithm) else {
            if !re.go_digest_anchored.is_match(s) {
                return Err(ERR_DIGEST_INVALID_FORMAT.into());
            }
            return Err(ERR_DIGEST_UNSUPPORTED.into());
        };
        if size * 2 != encoded.len() {
            return Err(ERR_DIGEST_INVALID_LENGTH.into());
        }
        if encoded_re.is_match(encoded) {
            Ok(())
        } else {
            Err(ERR_DIGEST_INVALID_FORMAT.into())
        }
    }
}
