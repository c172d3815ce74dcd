//! Image references: parsing never panics, and a parsed reference prints
//! back to a string that parses to the same parts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pull_secret_injector::core::image;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(reference) = image::parse(text) else {
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
