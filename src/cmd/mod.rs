//! The command line: one module per subcommand, each owning its flags
//! (clap derive, every flag also an environment variable shown in
//! `--help`) and destructuring them once into what it runs. This module
//! only dispatches; flag groups and value parsers that several commands
//! share live in [`args`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod args;
pub mod audit;
pub mod certs;
pub mod check_policy;
pub mod explain;
pub mod mutate;
pub mod serve;
pub mod sync;

/// Adds the right imagePullSecrets to new Pods, from a policy that maps
/// registries to Secret names.
#[derive(Debug, Parser)]
#[command(name = "pull-secret-injector", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the webhook (HTTPS admission endpoint, health, metrics).
    // Boxed: its flags outweigh every other command's.
    Serve(Box<serve::ServeArgs>),
    /// Run the controller that copies managed secrets where the webhook
    /// injects them (leader-elected; metrics and health on a plain listener).
    Sync(sync::SyncArgs),
    /// Apply the policy offline to an AdmissionReview or a Pod (YAML or JSON).
    Mutate(mutate::MutateArgs),
    /// Show how images normalize and which rules and secrets they get.
    Explain(explain::ExplainArgs),
    /// Validate a policy file; every error is printed with line and column.
    CheckPolicy(check_policy::CheckPolicyArgs),
    /// Generate a CA and a serving certificate for the webhook's Service.
    Certs(certs::CertsArgs),
    /// List the Pods whose images lack the secrets the policy gives them,
    /// or list secrets that cannot work (exit 1 when there are findings).
    Audit(audit::AuditArgs),
}

/// Parses argv and runs the chosen subcommand.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Sync(args) => sync::run(args),
        Command::Mutate(args) => mutate::run(args),
        Command::Explain(args) => explain::run(args),
        Command::CheckPolicy(args) => return check_policy::run(args),
        Command::Audit(args) => return audit::run(args),
        Command::Certs(args) => certs::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
