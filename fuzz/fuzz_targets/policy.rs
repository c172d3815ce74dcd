//! The policy loader on arbitrary text: parse, validate and compile never
//! panic; every error has a position; a compiled policy answers queries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pull_secret_injector::core::image;
use pull_secret_injector::core::policy::CompiledPolicy;
use pull_secret_injector::core::query::{self, Scope};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match CompiledPolicy::from_text(text) {
        Ok(policy) => {
            for image in [
                "nginx",
                "ghcr.io/acme/app:1",
                "harbor.corp.example:5000/team-a/x",
            ] {
                let reference = image::parse(image).expect("valid image");
                let _ = query::secrets_for(&policy, &reference, Scope::AnyNamespace);
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty());
            assert!(
                errors.0.iter().all(|e| e.line >= 1 && e.column >= 1),
                "{errors}"
            );
        }
    }
});
