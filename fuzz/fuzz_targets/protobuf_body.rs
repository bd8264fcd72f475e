//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`): any bytes
//! decode to an object or an error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = flotilla_apiserver::protobuf::decode(data);
});
