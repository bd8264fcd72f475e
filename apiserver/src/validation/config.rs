//! ConfigMap and Secret rules (upstream `ValidateConfigMap`, `ValidateSecret` and their
//! updates): valid keys, a 1 MiB size cap, required keys per secret type, and the
//! `immutable: true` lock.
//!
//! Secrets are validated after defaulting moved `stringData` into `data`, so `data` is the
//! whole payload (base64 in JSON; its decoded size is what counts).

use serde_json::{Map, Value};

use super::meta::validate_meta;
use super::names::{is_config_map_key, NameRule};
use super::{field, obj_field, semantic_eq, str_field, Bad, Errors, Path};

/// Upstream's `MaxSecretSize`, which also caps ConfigMaps.
const MAX_SIZE_BYTES: usize = 1024 * 1024;
const IMMUTABLE_MSG: &str = "field is immutable when `immutable` is set";

/// Validates a `configmaps` or `secrets` object.
pub(crate) fn validate(plural: &str, obj: &Value, errs: &mut Errors) {
    validate_meta(obj, NameRule::Subdomain, errs);
    if plural == "configmaps" {
        validate_config_map(obj, errs);
    } else {
        validate_secret(obj, errs);
    }
}

fn validate_keys(
    map: Option<&Map<String, Value>>,
    path: &Path,
    other: Option<&Map<String, Value>>,
    other_name: &str,
    errs: &mut Errors,
) {
    for key in map.into_iter().flatten().map(|(k, _)| k) {
        errs.invalid_each(&path.key(key), key, is_config_map_key(key));
        if other.is_some_and(|o| o.contains_key(key)) {
            errs.invalid(&path.key(key), Bad::str(key), &format!("duplicate of key present in {other_name}"));
        }
    }
}

fn validate_config_map(obj: &Value, errs: &mut Errors) {
    let (data, binary) = (obj_field(obj, "data"), obj_field(obj, "binaryData"));
    validate_keys(data, &Path::root("data"), binary, "binaryData", errs);
    validate_keys(binary, &Path::root("binaryData"), data, "data", errs);
    let text: usize = data.into_iter().flatten().map(|(_, v)| v.as_str().map_or(0, str::len)).sum();
    if text > MAX_SIZE_BYTES {
        // Upstream passes an empty path: the error is about the whole object.
        errs.too_long(&Path::root(""), MAX_SIZE_BYTES);
    }
}

/// The decoded length of base64 text, or the offset of the first bad byte (Go's
/// `illegal base64 data at input byte N`).
fn base64_decoded_len(s: &str) -> Result<usize, usize> {
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2 {
        return Err(body.len());
    }
    if let Some(pos) = body.bytes().position(|c| !(c.is_ascii_alphanumeric() || c == b'+' || c == b'/')) {
        return Err(pos);
    }
    let padded_rem = s.len() % 4;
    if body.len() % 4 == 1 || (s.len() != body.len() && padded_rem != 0) {
        return Err(body.len().saturating_sub(1));
    }
    Ok(body.len() * 3 / 4)
}

fn validate_secret(obj: &Value, errs: &mut Errors) {
    let data = obj_field(obj, "data");
    let data_path = Path::root("data");
    validate_keys(data, &data_path, None, "", errs);
    let mut total = 0usize;
    for (key, value) in data.into_iter().flatten() {
        match base64_decoded_len(value.as_str().unwrap_or("")) {
            Ok(n) => total += n,
            Err(at) => errs.invalid(
                &data_path.key(key),
                Bad::str("<value omitted>"),
                &format!("illegal base64 data at input byte {at}"),
            ),
        }
    }
    if total > MAX_SIZE_BYTES {
        errs.too_long(&data_path, MAX_SIZE_BYTES);
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    let require = |errs: &mut Errors, k: &str| {
        if !has(k) {
            errs.required(&data_path.key(k), "");
        }
    };
    match str_field(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let annotations = field(obj, "metadata").and_then(|m| obj_field(m, "annotations"));
            let name = annotations.and_then(|a| a.get("kubernetes.io/service-account.name")).and_then(Value::as_str);
            if name.unwrap_or("").is_empty() {
                let p = Path::root("metadata").child("annotations").key("kubernetes.io/service-account.name");
                errs.required(&p, "");
            }
        }
        "kubernetes.io/dockercfg" => require(errs, ".dockercfg"),
        "kubernetes.io/dockerconfigjson" => require(errs, ".dockerconfigjson"),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.required(&data_path.key("username"), "");
            errs.required(&data_path.key("password"), "");
        }
        "kubernetes.io/ssh-auth" => require(errs, "ssh-privatekey"),
        "kubernetes.io/tls" => {
            require(errs, "tls.crt");
            require(errs, "tls.key");
        }
        _ => {}
    }
}

/// The update rules: the `immutable` lock and, for secrets, the immutable `type`.
pub(crate) fn validate_update(plural: &str, new: &Value, old: &Value, errs: &mut Errors) {
    if plural == "secrets" && str_field(new, "type") != str_field(old, "type") {
        errs.immutable(&Path::root("type"), Bad::str(str_field(new, "type")));
    }
    if field(old, "immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if field(new, "immutable").and_then(Value::as_bool) != Some(true) {
        errs.forbidden(&Path::root("immutable"), IMMUTABLE_MSG);
    }
    let keys: &[&str] = if plural == "configmaps" { &["data", "binaryData"] } else { &["data"] };
    for key in keys {
        if !semantic_eq(field(new, key), field(old, key)) {
            errs.forbidden(&Path::root(key), IMMUTABLE_MSG);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::testing::{create, update};
    use serde_json::json;

    #[test]
    fn config_map_keys() {
        let cm = json!({"metadata": {"name": "app"}, "data": {"app.properties": "a=1", "bad key": "x", "both": "y"},
            "binaryData": {"both": "eQ=="}});
        assert_eq!(create("configmaps", &cm), vec![
            "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            "data[both]: Invalid value: \"both\": duplicate of key present in binaryData",
            "binaryData[both]: Invalid value: \"both\": duplicate of key present in data",
        ]);
    }

    #[test]
    fn config_map_size_cap() {
        let cm = json!({"metadata": {"name": "big"}, "data": {"blob": "x".repeat(MAX_SIZE_BYTES + 1)}});
        assert_eq!(create("configmaps", &cm), vec![": Too long: may not be more than 1048576 bytes"]);
    }

    #[test]
    fn secret_data_and_types() {
        let s = json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA==", "..x": "eA=="}});
        assert_eq!(
            create("secrets", &s),
            vec!["data[..x]: Invalid value: \"..x\": must not start with '..'", "data[tls.key]: Required value"]
        );
        let s = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"k": "not base64!"}});
        assert_eq!(
            create("secrets", &s),
            vec!["data[k]: Invalid value: \"<value omitted>\": illegal base64 data at input byte 3"]
        );
        let s = json!({"metadata": {"name": "t"}, "type": "kubernetes.io/service-account-token"});
        assert_eq!(
            create("secrets", &s),
            vec!["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
        );
    }

    #[test]
    fn base64_lengths() {
        assert_eq!(base64_decoded_len("aGVsbG8="), Ok(5));
        assert_eq!(base64_decoded_len("aGVsbG8"), Ok(5));
        assert_eq!(base64_decoded_len(""), Ok(0));
        assert_eq!(base64_decoded_len("a"), Err(0));
        assert_eq!(base64_decoded_len("ab=c"), Err(2));
    }

    #[test]
    fn immutable_objects_lock_their_data() {
        let old = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
        let same = old.clone();
        assert_eq!(update("configmaps", &same, &old), Vec::<String>::new());
        let new = json!({"metadata": {"name": "c"}, "data": {"a": "2"}});
        assert_eq!(
            update("configmaps", &new, &old),
            vec![
                "immutable: Forbidden: field is immutable when `immutable` is set",
                "data: Forbidden: field is immutable when `immutable` is set",
            ]
        );
        let mutable_old = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        assert_eq!(update("configmaps", &new, &mutable_old), Vec::<String>::new());
    }

    #[test]
    fn secret_type_is_immutable() {
        let old = json!({"metadata": {"name": "s"}, "type": "Opaque"});
        let new = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls"});
        assert_eq!(
            update("secrets", &new, &old),
            vec!["type: Invalid value: \"kubernetes.io/tls\": field is immutable"]
        );
    }
}
