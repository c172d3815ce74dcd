//! The kubelet credential matcher: any docker config bytes and any image
//! string never panic; every credential a lookup returns is a key of the
//! configs, and a lookup is stable (the same answer twice).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pull_secret_injector::core::credentials::{ConfigFormat, DockerConfig, Keyring};

fuzz_target!(|data: &[u8]| {
    // Layout: a first byte choosing the format, then the config and the
    // image separated by the first 0xff byte (not valid UTF-8, so it
    // cannot be part of either).
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let format = if choice % 2 == 0 {
        ConfigFormat::DockerConfigJson
    } else {
        ConfigFormat::Dockercfg
    };
    let (config, image) = match rest.iter().position(|&b| b == 0xff) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b"nginx"[..]),
    };
    let Ok(config) = DockerConfig::parse(format, config) else {
        return;
    };
    let keyring = Keyring::new([&config]);
    let Ok(image) = std::str::from_utf8(image) else {
        return;
    };
    let _ = keyring.covers(image);
    let Ok(found) = keyring.lookup(image) else {
        return;
    };
    for credential in &found {
        assert!(
            config.keys().iter().any(|k| k == credential.key()),
            "{:?} is not a key of the config",
            credential.key()
        );
    }
    let again = keyring.lookup(image).expect("parsed once");
    let keys = |v: &[&pull_secret_injector::core::credentials::Credential]| {
        v.iter().map(|c| c.key().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(keys(&found), keys(&again));
});
