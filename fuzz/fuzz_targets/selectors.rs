//! Label and field selectors from query strings: parsed (and matched against an object) or
//! refused, never a panic.
#![no_main]

use flotilla_apiserver::selector::{FieldSelector, LabelSelector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let pod = serde_json::json!({
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
        "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}
    });
    if let Ok(s) = LabelSelector::parse(text) {
        let _ = s.matches_object(&pod);
    }
    if let Ok(s) = FieldSelector::parse(text) {
        let _ = s.matches("pods", &pod);
    }
});
