//! Tests of the decision: whole reviews decided and encoded, and plans.

mod review {
    use crate::core::decide::*;
    use crate::core::policy::CompiledPolicy;
    use crate::core::review::*;
    use base64::Engine as _;
    use serde_json::{Value, json};

    fn review(operation: &str, sub: Option<&str>, object: Value) -> Vec<u8> {
        let mut request = json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": operation,
            "namespace": "team-a",
            "object": object,
        });
        if let Some(sub) = sub {
            request["subResource"] = json!(sub);
        }
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request,
        }))
        .expect("serializes")
    }

    fn policy() -> CompiledPolicy {
        CompiledPolicy::from_text(
            "rules:\n- name: hub\n  registries: [docker.io]\n  secrets: [hub]\n",
        )
        .expect("valid")
    }

    #[test]
    fn bad_bodies_are_named_precisely() {
        for (body, expected) in [
            (&b"not json"[..], "not an AdmissionReview"),
            (br#"{"apiVersion":"v1","kind":"AdmissionReview"}"#, "unsupported apiVersion"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#, "unsupported kind"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#, "no request"),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":""}}"#,
                "empty uid",
            ),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x""#, "EOF"),
        ] {
            let err = Review::decode(body).expect_err("must fail");
            assert!(err.to_string().contains(expected), "{err} vs {expected}");
        }
    }

    #[test]
    fn actions_follow_operation_kind_and_subresource() {
        let pod = json!({"spec": {"containers": []}});
        for (op, sub, expected) in [
            ("CREATE", None, Action::Mutate),
            ("UPDATE", None, Action::Warn(Scope::AllContainers)),
            (
                "UPDATE",
                Some("ephemeralcontainers"),
                Action::Warn(Scope::EphemeralOnly),
            ),
            ("UPDATE", Some("status"), Action::Skip),
            ("DELETE", None, Action::Skip),
            ("CREATE", Some("binding"), Action::Skip),
        ] {
            let body = review(op, sub, pod.clone());
            let review = Review::decode(&body).expect("decodes");
            assert_eq!(action(&review.request), expected, "{op} {sub:?}");
        }
    }

    #[test]
    fn unreadable_pod_is_a_bad_review_when_kind_comes_first() {
        let body = review("CREATE", None, json!({"spec": "nonsense"}));
        let err = Review::decode(&body).expect_err("the object is no Pod");
        assert!(
            err.to_string()
                .contains("expected the Pod's spec (an object)"),
            "{err}"
        );
    }

    #[test]
    fn the_logged_pod_name_is_the_name_else_the_generate_name() {
        let policy = policy();
        for (metadata, expected) in [
            (json!({"name": "web-0", "generateName": "web-"}), "web-0"),
            (json!({"generateName": "api-7d9f-"}), "api-7d9f-"),
            (json!({"generateName": "caf\u{e9}-\"q\"-"}), "café-\"q\"-"),
            (json!({}), ""),
        ] {
            let pod = json!({"metadata": metadata, "spec": {"containers": []}});
            // `kind` first: the Pod is read with the request (and borrowed
            // from the body); `kind` last: it is read by the decision.
            let in_order = review("CREATE", None, pod.clone());
            let object = serde_json::to_string(&pod).expect("serializes");
            let kind_last = format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","operation":"CREATE","object":{object},"kind":{{"group":"","version":"v1","kind":"Pod"}}}}}}"#
            );
            for body in [&in_order[..], kind_last.as_bytes()] {
                let review = Review::decode(body).expect("decodes");
                assert_eq!(decide(&review.request, &policy, None).pod, expected);
            }
        }
    }

    #[test]
    fn object_before_kind_is_read_afterwards() {
        let policy = policy();
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","object":{"spec":{"containers":[{"name":"a","image":"nginx"}]}},"kind":{"group":"","version":"v1","kind":"Pod"}}}"#;
        let review = Review::decode(body).expect("decodes");
        assert!(matches!(review.request.object, Some(Object::Raw(_))));
        assert_eq!(decide(&review.request, &policy, None).added[..], ["hub"]);

        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","object":{"spec":"nonsense"},"kind":{"group":"","version":"v1","kind":"Pod"}}}"#;
        let review = Review::decode(body).expect("decodes");
        let decision = decide(&review.request, &policy, None);
        assert_eq!(decision.outcome, Outcome::Skipped);
        assert!(decision.patch.is_none());
        assert!(decision.warnings[0].contains("could not read the Pod"));
    }

    #[test]
    fn response_echoes_version_and_uid_with_base64_patch() {
        let body = review(
            "CREATE",
            None,
            json!({"spec": {"containers": [{"name": "a", "image": "nginx"}]}}),
        );
        let review = Review::decode(&body).expect("decodes");
        let policy = policy();
        let decision = decide(&review.request, &policy, None);
        let out: Value = serde_json::from_slice(&decision.encode(&review)).expect("json");
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(out["kind"], "AdmissionReview");
        assert_eq!(
            out["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
        assert_eq!(out["response"]["allowed"], true);
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        assert_eq!(
            out["response"]["auditAnnotations"]["injected-secrets"],
            "hub"
        );
        let patch = base64::engine::general_purpose::STANDARD
            .decode(out["response"]["patch"].as_str().expect("string"))
            .expect("base64");
        let patch: Value = serde_json::from_slice(&patch).expect("patch json");
        assert_eq!(patch[0]["path"], "/spec/imagePullSecrets");
    }

    #[test]
    fn mirror_pods_are_left_alone() {
        let policy = policy();
        for annotations in [
            json!({"kubernetes.io/config.mirror": "8c5f0a", "kubernetes.io/config.source": "file"}),
            json!({"a": {"nested": ["ignored"]}, "kubernetes.io/config.mirror": ""}),
        ] {
            let body = review(
                "CREATE",
                None,
                json!({"metadata": {"name": "etcd-node1", "annotations": annotations},
                       "spec": {"containers": [{"name": "a", "image": "nginx"}]}}),
            );
            let review = Review::decode(&body).expect("decodes");
            let decision = decide(&review.request, &policy, None);
            assert_eq!(decision.outcome, Outcome::Skipped);
            assert!(decision.patch.is_none());
            assert!(decision.warnings.is_empty(), "{:?}", decision.warnings);
        }
        // Other annotations (or none, or null) do not change anything.
        for metadata in [
            json!({"annotations": {"kubernetes.io/config.source": "api"}}),
            json!({"annotations": null}),
            json!({}),
        ] {
            let body = review(
                "CREATE",
                None,
                json!({"metadata": metadata, "spec": {"containers": [{"name": "a", "image": "nginx"}]}}),
            );
            let review = Review::decode(&body).expect("decodes");
            let decision = decide(&review.request, &policy, None);
            assert_eq!(decision.outcome, Outcome::Patched, "{metadata}");
        }
    }

    #[test]
    fn report_only_answers_without_a_patch_and_names_what_it_would_add() {
        let policy = policy();
        let body = review(
            "CREATE",
            None,
            json!({"spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "bad image"}]}}),
        );
        let decoded = Review::decode(&body).expect("decodes");
        let enforced = decide(&decoded.request, &policy, None);
        let reported = decide(&decoded.request, &policy, None).into_report();
        assert_eq!(reported.outcome, Outcome::Reported);
        assert_eq!(reported.outcome.as_str(), "reported");
        assert!(reported.patch.is_none());
        assert_eq!(reported.added, enforced.added);
        assert_eq!(reported.rules, enforced.rules);
        assert_eq!(reported.added_by_rule, enforced.added_by_rule);
        assert_eq!(reported.warnings, enforced.warnings);
        assert_eq!(reported.warnings.len(), 1, "{:?}", reported.warnings);
        let out: Value = serde_json::from_slice(&reported.encode(&decoded)).expect("json");
        let response = &out["response"];
        assert_eq!(response["allowed"], true);
        assert!(response.get("patch").is_none() && response.get("patchType").is_none());
        assert_eq!(
            response["auditAnnotations"],
            json!({"would-inject-secrets": "hub"})
        );
        assert_eq!(response["warnings"].as_array().map(Vec::len), Some(1));

        // Nothing to add, or nothing to decide: the same answer as enforcing.
        let body = review(
            "CREATE",
            None,
            json!({"spec": {"containers": [{"name": "a", "image": "nginx"}], "imagePullSecrets": [{"name": "hub"}]}}),
        );
        let decoded = Review::decode(&body).expect("decodes");
        let reported = decide(&decoded.request, &policy, None).into_report();
        assert_eq!(reported.outcome, Outcome::Unchanged);
        let out: Value = serde_json::from_slice(&reported.encode(&decoded)).expect("json");
        assert!(out["response"].get("auditAnnotations").is_none(), "{out}");
        let body = review("DELETE", None, json!({"spec": {"containers": []}}));
        let decoded = Review::decode(&body).expect("decodes");
        assert_eq!(
            decide(&decoded.request, &policy, None)
                .into_report()
                .outcome,
            Outcome::Skipped
        );
    }

    #[test]
    fn update_lacking_a_secret_is_warned_not_patched() {
        let body = review(
            "UPDATE",
            None,
            json!({"spec": {"containers": [{"name": "a", "image": "nginx"}]}}),
        );
        let review = Review::decode(&body).expect("decodes");
        let policy = policy();
        let decision = decide(&review.request, &policy, None);
        assert!(decision.patch.is_none());
        assert!(
            decision.warnings[0].contains("lacks imagePullSecrets hub"),
            "{:?}",
            decision.warnings
        );
    }
}

mod plan {
    use crate::core::decide::*;
    use crate::core::pod::*;
    use crate::core::policy::{CompiledPolicy, NamespaceFacts};
    use std::collections::BTreeMap;

    const POLICY: &str = r#"
rules:
  - name: corp-harbor
    registries: [harbor.corp.example, "*.corp.example:5000"]
    repositories: ["team-a/**"]
    secrets: [harbor-pull, shared]
  - name: dockerhub
    registries: [docker.io]
    secrets: [dockerhub-creds, shared]
  - name: labelled
    registries: [ghcr.io]
    secrets: [ghcr]
    namespaces:
      selector:
        matchLabels: {registry-access: ghcr}
  - name: prod-only
    registries: [quay.io]
    secrets: [quay]
    namespaces:
      include: ["prod-*"]
      exclude: ["prod-sandbox"]
"#;

    fn policy() -> CompiledPolicy {
        CompiledPolicy::from_text(POLICY).expect("test policy is valid")
    }

    fn pod(json: &str) -> PodView<'_> {
        serde_json::from_str(json).expect("test pod parses")
    }

    fn ns(name: &str) -> NamespaceFacts<'_> {
        NamespaceFacts { name, labels: None }
    }

    #[test]
    fn secrets_follow_rule_order_then_secret_order_without_duplicates() {
        let policy = policy();
        let pod = pod(
            r#"{"spec":{"containers":[{"name":"a","image":"harbor.corp.example/team-a/api:1"},
                {"name":"b","image":"nginx"}]}}"#,
        );
        let plan = plan(&pod, &ns("default"), &policy, Scope::AllContainers);
        assert_eq!(plan.rules[..], ["corp-harbor", "dockerhub"]);
        assert_eq!(
            plan.wanted[..],
            ["harbor-pull", "shared", "dockerhub-creds"]
        );
        assert_eq!(plan.missing, plan.wanted);
        assert!(!plan.field_present);
        assert_eq!(
            plan.missing_by_rule()[..],
            [("corp-harbor", 2), ("dockerhub", 1)]
        );
    }

    #[test]
    fn rule_order_does_not_depend_on_container_order() {
        let policy = policy();
        let pod = pod(r#"{"spec":{"containers":[{"name":"b","image":"nginx"}],
                "initContainers":[{"name":"a","image":"harbor.corp.example/team-a/api:1"}]}}"#);
        let plan = plan(&pod, &ns("default"), &policy, Scope::AllContainers);
        assert_eq!(
            plan.wanted[..],
            ["harbor-pull", "shared", "dockerhub-creds"]
        );
    }

    #[test]
    fn existing_secret_is_kept_and_not_requested_again() {
        let policy = policy();
        let pod = pod(
            r#"{"spec":{"containers":[{"name":"b","image":"docker.io/library/nginx"}],
                "imagePullSecrets":[{"name":"shared"},{}]}}"#,
        );
        let plan = plan(&pod, &ns("default"), &policy, Scope::AllContainers);
        assert!(plan.field_present);
        assert_eq!(plan.missing[..], ["dockerhub-creds"]);
    }

    #[test]
    fn ephemeral_scope_ignores_regular_containers() {
        let policy = policy();
        let pod = pod(r#"{"spec":{"containers":[{"name":"b","image":"nginx"}],
                "ephemeralContainers":[{"name":"dbg","image":"harbor.corp.example/team-a/dbg"}]}}"#);
        let plan = plan(&pod, &ns("default"), &policy, Scope::EphemeralOnly);
        assert_eq!(plan.rules[..], ["corp-harbor"]);
    }

    #[test]
    fn unparseable_image_gives_a_warning_and_no_secret() {
        let policy = policy();
        let pod =
            pod(r#"{"spec":{"containers":[{"name":"x","image":"Harbor.corp.example/Team/app"}]}}"#);
        let plan = plan(&pod, &ns("default"), &policy, Scope::AllContainers);
        assert!(plan.wanted.is_empty());
        assert_eq!(plan.warnings.len(), 1);
        assert!(
            plan.warnings[0].contains("not a valid reference"),
            "{}",
            plan.warnings[0]
        );
    }

    #[test]
    fn selector_with_unknown_labels_does_not_match_and_warns() {
        let policy = policy();
        let pod = pod(r#"{"spec":{"containers":[{"name":"x","image":"ghcr.io/org/app"}]}}"#);
        let plan = plan(&pod, &ns("team"), &policy, Scope::AllContainers);
        assert!(plan.wanted.is_empty());
        assert_eq!(plan.unmatched_images, 1);
        assert!(plan.warnings[0].contains("labels of namespace \"team\" are unknown"));

        let labels = BTreeMap::from([("registry-access".to_owned(), "ghcr".to_owned())]);
        let facts = NamespaceFacts {
            name: "team",
            labels: Some(&labels),
        };
        let plan = crate::core::decide::plan(&pod, &facts, &policy, Scope::AllContainers);
        assert_eq!(plan.wanted[..], ["ghcr"]);
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn namespace_globs_limit_a_rule() {
        let policy = policy();
        let pod = pod(r#"{"spec":{"containers":[{"name":"x","image":"quay.io/org/app"}]}}"#);
        for (namespace, expected) in [
            ("prod-eu", vec!["quay"]),
            ("prod-sandbox", vec![]),
            ("dev", vec![]),
        ] {
            let plan = plan(&pod, &ns(namespace), &policy, Scope::AllContainers);
            assert_eq!(plan.wanted[..], expected, "namespace {namespace}");
        }
    }

    #[test]
    fn null_container_lists_read_as_empty() {
        let policy = policy();
        let pod = pod(
            r#"{"metadata":{"annotations":null},"spec":{"containers":null,"initContainers":null,
                "ephemeralContainers":null,"imagePullSecrets":null}}"#,
        );
        let plan = plan(&pod, &ns("default"), &policy, Scope::AllContainers);
        assert!(plan.wanted.is_empty() && plan.warnings.is_empty());
        assert!(!plan.field_present);
    }

    #[test]
    fn warnings_are_cleaned_and_bounded() {
        let long = format!("a\u{7}{}", "b".repeat(400));
        let cleaned = clean_warning(&long);
        assert_eq!(cleaned.chars().count(), MAX_WARNING_CHARS);
        assert!(!cleaned.contains('\u{7}'));
        assert!(cleaned.ends_with('…'));

        let policy = policy();
        let containers: Vec<String> = (0..50)
            .map(|i| format!(r#"{{"name":"c{i}","image":"BAD/IMAGE{i}"}}"#))
            .collect();
        let json = format!(r#"{{"spec":{{"containers":[{}]}}}}"#, containers.join(","));
        let plan = plan(&pod(&json), &ns("default"), &policy, Scope::AllContainers);
        assert_eq!(plan.warnings.len(), MAX_WARNINGS);
    }
}
