//! Image references: parsing never panics, the one-pass parse of the usual
//! reference agrees with the full grammar, and a parsed reference prints
//! back to a string that parses to the same parts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pull_secret_injector::core::image;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The one-pass reading of the usual reference answers exactly as the
    // full grammar, errors included.
    let parsed = image::parse(text);
    assert_eq!(parsed, image::parse_full(text), "{text:?}");
    let Ok(reference) = parsed else {
        return;
    };
    let printed = reference.to_string();
    let again = image::parse(&printed).expect("a printed reference parses");
    assert_eq!(
        again.registry(),
        reference.registry(),
        "{text:?} → {printed:?}"
    );
    assert_eq!(
        again.repository(),
        reference.repository(),
        "{text:?} → {printed:?}"
    );
    assert_eq!(again.tag(), reference.tag(), "{text:?} → {printed:?}");
    assert_eq!(again.digest(), reference.digest(), "{text:?} → {printed:?}");
});
