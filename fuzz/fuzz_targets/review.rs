//! The webhook's request path on arbitrary bytes: decode an AdmissionReview,
//! decide it against a fixed policy (with and without namespace labels) and
//! encode the response. Nothing may panic; a decoded review's response
//! must be JSON, and a patch must be a JSON array. The fast reader
//! (`Review::decode`) must give what serde's derived readers give
//! (`Review::decode_reference`), or both must refuse the body.
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use pull_secret_injector::core::decide::decide;
use pull_secret_injector::core::policy::CompiledPolicy;
use pull_secret_injector::core::json::JsonError;
use pull_secret_injector::core::review::{DecodeReviewError, Review};

static POLICY: LazyLock<CompiledPolicy> = LazyLock::new(|| {
    CompiledPolicy::from_text(include_str!("../../manifests/policy.yaml"))
        .expect("the shipped policy is valid")
});

fuzz_target!(|data: &[u8]| {
    let fast = Review::decode(data);
    match (&fast, &Review::decode_reference(data)) {
        (Ok(fast), Ok(reference)) => assert_eq!(format!("{fast:?}"), format!("{reference:?}")),
        (Err(_), Err(_)) => {}
        // serde's derived readers take a struct written as an array of its
        // fields; the fast reader refuses it (Kubernetes never writes one).
        (Err(DecodeReviewError::Json(JsonError::Type { array: true, .. })), Ok(_)) => {}
        (fast, reference) => panic!("readers disagree: {fast:?} vs {reference:?}"),
    }
    let Ok(review) = fast else {
        return;
    };
    let labels = BTreeMap::from([("team".to_owned(), "a".to_owned())]);
    for labels in [None, Some(&labels)] {
        let decision = decide(&review.request, &POLICY, labels);
        if let Some(patch) = &decision.patch {
            let ops: serde_json::Value = serde_json::from_str(patch).expect("patch is JSON");
            assert!(ops.is_array(), "{patch}");
        }
        let response = decision.encode(&review);
        serde_json::from_slice::<serde_json::Value>(&response).expect("response is JSON");
    }
});
