//! `certs`: a CA and a serving certificate for the webhook's Service, and
//! the caBundle to paste into the MutatingWebhookConfiguration.

use std::path::PathBuf;

use base64::Engine as _;
use clap::Args;

use crate::webhook::certs;

/// Flags of `certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Name of the webhook's Service.
    #[arg(long, env = "PSI_SERVICE")]
    service: String,
    /// Namespace of the Service.
    #[arg(long, env = "PSI_NAMESPACE")]
    namespace: String,
    /// Where to write ca.crt, tls.crt and tls.key.
    #[arg(long, env = "PSI_OUT_DIR", default_value = "certs")]
    out_dir: PathBuf,
}

/// Runs `certs`.
pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    let CertsArgs {
        service,
        namespace,
        out_dir,
    } = args;
    let files = certs::CertFiles::in_dir(&out_dir);
    let hosts = certs::service_hosts(&service, &namespace);
    let ca = certs::write_set(&files, &hosts)?;
    eprintln!(
        "wrote {}, {} and {} (names: {})",
        files.ca.display(),
        files.cert.display(),
        files.key.display(),
        hosts.join(", ")
    );
    eprintln!("caBundle for the MutatingWebhookConfiguration:");
    println!("{}", base64::engine::general_purpose::STANDARD.encode(ca));
    Ok(())
}
