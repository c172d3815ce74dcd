//! Runs one operation of the synchronous core a given number of times, for
//! counting instructions with valgrind (`bench/instructions.sh`): unlike
//! wall-clock timings, instruction counts do not move with the load of a
//! shared machine, so small differences (a 10-rule against a 10,000-rule
//! policy) can be told apart reliably.
//!
//! ```text
//! cargo run --release --example core_ops -- --op review --rules 10000 --iterations 1000
//! ```
//!
//! * `review`: decode the fixture AdmissionReview, decide against the
//!   policy, encode the answer (the whole request path minus TLS and HTTP).
//! * `floor`: what `examples/floor.rs` does per request — borrow
//!   `request.uid` out of the same review (scanning the rest) and write the
//!   fixed answer — for the review's cost relative to the least a webhook
//!   pays in its handler.
//! * `compile`: policy text → compiled policy (the result is dropped after
//!   each iteration).
//!
//! The policies come from `benches/support/mod.rs`, as in the benches.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../benches/support/mod.rs"]
mod support;

use std::hint::black_box;

use clap::{Parser, ValueEnum};
use pull_secret_injector::core::decide::decide;
use pull_secret_injector::core::policy::CompiledPolicy;
use pull_secret_injector::core::review::Review;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Op {
    Review,
    Floor,
    Compile,
}

#[derive(serde::Deserialize)]
struct FloorReview<'a> {
    #[serde(borrow)]
    request: FloorRequest<'a>,
}

#[derive(serde::Deserialize)]
struct FloorRequest<'a> {
    #[serde(borrow)]
    uid: &'a str,
}

/// Runs a core operation N times (see the file's documentation).
#[derive(Debug, Parser)]
struct Args {
    #[arg(long, value_enum)]
    op: Op,
    /// Rules in the generated policy.
    #[arg(long, default_value_t = 100)]
    rules: usize,
    /// Filler rules share six registries (see `gen_policy --shared-hosts`).
    #[arg(long)]
    shared_hosts: bool,
    #[arg(long, default_value_t = 1000)]
    iterations: usize,
}

fn main() {
    let args = Args::parse();
    let shape = support::Shape::from_shared_hosts(args.shared_hosts);
    let text = support::policy_yaml(args.rules, shape);
    match args.op {
        Op::Review => {
            let policy = CompiledPolicy::from_text(&text).expect("generated policy");
            let body = support::fixture_body();
            let mut bytes = 0;
            for _ in 0..args.iterations {
                let review = Review::decode(black_box(&body)).expect("decodes");
                let decision = decide(&review.request, &policy, None);
                assert!(decision.patch.is_some());
                bytes += decision.encode(&review).len();
            }
            black_box(bytes);
        }
        Op::Floor => {
            let body = support::fixture_body();
            let head = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"allowed":true,"patchType":"JSONPatch","patch":"W3sib3AiOiJhZGQiLCJwYXRoIjoiL3NwZWMvaW1hZ2VQdWxsU2VjcmV0cyIsInZhbHVlIjpbeyJuYW1lIjoiaGFyYm9yLXB1bGwifSx7Im5hbWUiOiJkb2NrZXJodWItY3JlZHMifSx7Im5hbWUiOiJnaGNyLWFjbWUifV19XQ==","uid":"#;
            let mut bytes = 0;
            for _ in 0..args.iterations {
                let review: FloorReview<'_> =
                    serde_json::from_slice(black_box(&body)).expect("decodes");
                let mut answer = Vec::with_capacity(head.len() + 48);
                answer.extend_from_slice(head.as_bytes());
                serde_json::to_writer(&mut answer, review.request.uid).expect("writes");
                answer.extend_from_slice(b"}}");
                bytes += black_box(answer).len();
            }
            black_box(bytes);
        }
        Op::Compile => {
            for _ in 0..args.iterations {
                black_box(CompiledPolicy::from_text(black_box(&text)).expect("valid"));
            }
        }
    }
}
