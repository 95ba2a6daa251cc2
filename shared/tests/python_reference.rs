//! Compares our JSON with real exchanges recorded from the Python Open MPIC service
//! (open-mpic-core 6.5.0), so clients written against it keep working.
//!
//! Every recorded 200 response must parse into our types and serialize back to the same JSON,
//! with one deliberate difference: HTTP details gain `resolved_ip`, which the API specification
//! defines and the Python service leaves out.

use std::fs;
use std::path::{Path, PathBuf};

use mpic_shared::reply::CheckResponse;
use mpic_shared::request::MpicRequest;
use mpic_shared::response::MpicResponse;
use serde_json::Value;

fn fixtures() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python-reference");
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 15,
        "expected the recorded fixtures in {}",
        dir.display()
    );
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = fs::read_to_string(&path).unwrap();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect()
}

/// Removes `resolved_ip: null` from HTTP details, the one field we add.
fn without_resolved_ip(mut value: Value) -> Value {
    match &mut value {
        Value::Object(map) => {
            if map.get("resolved_ip") == Some(&Value::Null) {
                map.remove("resolved_ip");
            }
            for child in map.values_mut() {
                *child = without_resolved_ip(child.take());
            }
        }
        Value::Array(items) => {
            for child in items.iter_mut() {
                *child = without_resolved_ip(child.take());
            }
        }
        _ => {}
    }
    value
}

#[test]
fn mpic_responses_round_trip() {
    let mut checked = 0;
    for (name, fixture) in fixtures() {
        if !name.starts_with("mpic-") || fixture["status"] != 200 {
            continue;
        }
        let expected = &fixture["response"];
        let parsed: MpicResponse = serde_json::from_value(expected.clone())
            .unwrap_or_else(|e| panic!("{name}: response does not parse: {e}"));
        let written = without_resolved_ip(serde_json::to_value(&parsed).unwrap());
        assert_eq!(
            &written, expected,
            "{name}: response JSON differs after a round trip"
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} responses were compared");
}

#[test]
fn mpic_requests_parse() {
    for (name, fixture) in fixtures() {
        if !name.starts_with("mpic-") || fixture["status"] != 200 {
            continue;
        }
        let request: MpicRequest = serde_json::from_value(fixture["request"].clone())
            .unwrap_or_else(|e| panic!("{name}: request does not parse: {e}"));
        assert_eq!(
            request.domain_or_ip_target, fixture["request"]["domain_or_ip_target"],
            "{name}: target"
        );
    }
}

#[test]
fn checker_replies_round_trip() {
    for (name, fixture) in fixtures() {
        if !name.starts_with("checker-") {
            continue;
        }
        let expected = &fixture["response"];
        let parsed: CheckResponse = serde_json::from_value(expected.clone())
            .unwrap_or_else(|e| panic!("{name}: reply does not parse: {e}"));
        let written = serde_json::to_value(&parsed).unwrap();
        assert_eq!(
            &written, expected,
            "{name}: reply JSON differs after a round trip"
        );
    }
}

#[test]
fn http_details_always_carry_resolved_ip() {
    let reply = r#"{"check_completed": true, "check_passed": true, "errors": null,
        "timestamp_ns": 1, "check_type": "dcv",
        "details": {"validation_method": "acme-http-01", "response_history": null,
                    "response_url": null, "response_status_code": null, "response_page": null}}"#;
    let parsed: CheckResponse = serde_json::from_str(reply).unwrap();
    let written = serde_json::to_value(&parsed).unwrap();
    assert_eq!(written["details"]["resolved_ip"], Value::Null);
    assert!(
        written["details"]
            .as_object()
            .unwrap()
            .contains_key("resolved_ip")
    );
}
