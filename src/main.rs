//! `pull-secret-injector`: see the crate documentation of the library.

fn main() -> std::process::ExitCode {
    pull_secret_injector::cmd::run()
}
