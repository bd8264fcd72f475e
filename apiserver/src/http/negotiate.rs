//! Content negotiation: what the client sent (JSON, YAML, protobuf) and what it accepts
//! back (JSON objects, or `meta.k8s.io` Tables for kubectl's human output).
//!
//! Responses are always JSON: every client that prefers protobuf also accepts JSON
//! (kubectl-api.md §9). A client that accepts nothing we can produce gets 406.

use axum::http::{header, HeaderMap};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::resources::Resource;

use crate::protobuf::CONTENT_TYPE as PROTOBUF;

/// The representation of resource responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Object,
    Table,
}

/// Media ranges of an Accept header: (type, parameters).
fn media_ranges(accept: &str) -> Vec<(String, Vec<(String, String)>)> {
    accept
        .split(',')
        .map(|range| {
            let mut parts = range.split(';').map(str::trim);
            let ty = parts.next().unwrap_or("").to_ascii_lowercase();
            let params = parts
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_string()))
                .collect();
            (ty, params)
        })
        .collect()
}

/// The output a resource request asks for.
pub fn output(headers: &HeaderMap) -> ApiResult<Output> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).filter(|a| !a.trim().is_empty())
    else {
        return Ok(Output::Object);
    };
    let mut json_ok = false;
    for (ty, params) in media_ranges(accept) {
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let json_like = matches!(ty.as_str(), "application/json" | "application/*" | "*/*" | "application/yaml");
        if ty == "application/json" && param("as") == Some("Table") {
            if param("g") == Some("meta.k8s.io") && matches!(param("v"), Some("v1" | "v1beta1")) {
                return Ok(Output::Table);
            }
            continue;
        }
        if json_like && param("as").is_none() {
            json_ok = true;
        }
    }
    if json_ok {
        Ok(Output::Object)
    } else {
        Err(ApiError::NotAcceptable(format!(
            "only the following media types are accepted: application/json, application/json;as=Table;v=v1;\
             g=meta.k8s.io (asked for {accept})"
        )))
    }
}

/// The request body's media type without parameters; a missing one means JSON (upstream
/// negotiates an empty Content-Type to its first type, JSON; the Python client relies on it).
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "application/json".into())
}

/// Decode a create/update body into an object of `res`, enforcing `fieldValidation=Strict`.
pub fn decode_object(res: &Resource, headers: &HeaderMap, body: &[u8], strict: bool) -> ApiResult<Value> {
    let cannot = |why: String| {
        ApiError::BadRequest(format!(
            "{} in version \"{}\" cannot be handled as a {}: {why}",
            res.kind, res.version, res.kind
        ))
    };
    let ct = content_type(headers);
    let obj: Value = match ct.as_str() {
        "application/json" => serde_json::from_slice(body).map_err(|e| cannot(e.to_string()))?,
        "application/yaml" => serde_yaml_ng::from_slice(body).map_err(|e| cannot(e.to_string()))?,
        PROTOBUF => crate::protobuf::decode(body).map_err(|e| {
            use crate::protobuf::ProtobufError;
            match e {
                ProtobufError::MissingMagic | ProtobufError::Malformed { .. } => cannot(e.to_string()),
                other => ApiError::UnsupportedMediaType(format!("{other}; send the object as application/json")),
            }
        })?,
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json, application/yaml, application/vnd.kubernetes.protobuf (got {other})"
            )))
        }
    };
    if !obj.is_object() {
        return Err(cannot("the body must be an object".into()));
    }
    if strict && ct != PROTOBUF {
        strict_check(res, body, &obj, &ct).map_err(cannot)?;
    }
    // Unknown fields are never stored (upstream's typed decode drops them).
    let mut obj = obj;
    crate::validation::drop_unknown_fields(res.plural, &mut obj).map_err(cannot)?;
    Ok(obj)
}

/// Unknown and duplicate fields, as upstream's strict decoding reports them.
fn strict_check(res: &Resource, body: &[u8], obj: &Value, ct: &str) -> Result<(), String> {
    let problems = if ct == "application/json" {
        crate::validation::strict_errors(res.plural, body)?
    } else {
        crate::validation::unknown_fields(res.plural, obj)?
    };
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("strict decoding error: {}", problems.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn kubectl_get_asks_for_tables() {
        let h = accept(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        );
        assert_eq!(output(&h).unwrap(), Output::Table);
        assert_eq!(output(&accept("application/vnd.kubernetes.protobuf,application/json")).unwrap(), Output::Object);
        assert_eq!(output(&HeaderMap::new()).unwrap(), Output::Object);
        assert!(output(&accept("application/vnd.kubernetes.protobuf")).is_err());
    }

    #[test]
    fn a_missing_content_type_is_json() {
        assert_eq!(content_type(&HeaderMap::new()), "application/json");
    }
}
