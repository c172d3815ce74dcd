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
    Compile,
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
        Op::Compile => {
            for _ in 0..args.iterations {
                black_box(CompiledPolicy::from_text(black_box(&text)).expect("valid"));
            }
        }
    }
}
