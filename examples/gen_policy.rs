//! Prints a generated policy of N rules (YAML) to stdout, from the same
//! generator the benches use (`benches/support/mod.rs`). `bench/load.sh`
//! uses it for the load test's 100-rule policy.
//!
//! ```text
//! cargo run --release --example gen_policy -- --rules 100 [--shared-hosts] > policy.yaml
//! ```

#[path = "../benches/support/mod.rs"]
mod support;

use clap::Parser;

/// Generates a realistic policy for benchmarks and load tests.
#[derive(Debug, Parser)]
struct Args {
    /// Number of rules (at least 6: the well-known rules that end every
    /// generated policy and that the fixture review's images hit).
    #[arg(long, default_value_t = 100)]
    rules: usize,
    /// Filler rules share six registries and differ by repository and
    /// namespace, instead of each naming registries of its own.
    #[arg(long)]
    shared_hosts: bool,
}

fn main() {
    let args = Args::parse();
    let shape = support::Shape::from_shared_hosts(args.shared_hosts);
    print!("{}", support::policy_yaml(args.rules, shape));
}
