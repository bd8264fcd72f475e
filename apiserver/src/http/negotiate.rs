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
    Table(Include),
}

/// What a Table row carries in `object` (`includeObject`; kubectl's `--sort-by` asks for
/// whole objects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Include {
    None,
    #[default]
    Metadata,
    Object,
}

impl Include {
    pub fn parse(v: Option<&str>) -> ApiResult<Self> {
        match v.unwrap_or("") {
            "" | "Metadata" => Ok(Include::Metadata),
            "None" => Ok(Include::None),
            "Object" => Ok(Include::Object),
            other => Err(ApiError::BadRequest(format!(
                "includeObject: Unsupported value: \"{other}\": supported values: \"None\", \"Metadata\", \"Object\""
            ))),
        }
    }
}

/// Objects as the client asked for them: the objects themselves (`list_meta` is then
/// unused), or a Table of them whose rows carry what `includeObject` says.
pub fn render(output: Output, plural: &str, objects: &[Value], list_meta: Value) -> Value {
    let Output::Table(include) = output else {
        return objects.first().cloned().unwrap_or(Value::Null);
    };
    let mut table = crate::table::table(plural, objects, list_meta, jiff::Timestamp::now());
    if let Some(rows) = table.get_mut("rows").and_then(Value::as_array_mut) {
        for (row, obj) in rows.iter_mut().zip(objects) {
            match include {
                Include::Metadata => {}
                Include::Object => row["object"] = obj.clone(),
                Include::None => {
                    if let Some(r) = row.as_object_mut() {
                        r.remove("object");
                    }
                }
            }
        }
    }
    table
}

/// One object (a get, or a watch event) as the client asked for it.
pub fn render_one(output: Output, plural: &str, obj: &Value) -> Value {
    let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
    render(output, plural, std::slice::from_ref(obj), serde_json::json!({"resourceVersion": rv}))
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

/// The output a resource request asks for (`include_object` is the `includeObject` query
/// parameter, used for Tables).
pub fn output(headers: &HeaderMap, include_object: Option<&str>) -> ApiResult<Output> {
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
                return Ok(Output::Table(Include::parse(include_object)?));
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

/// `fieldValidation`: what to do about unknown and duplicate fields in a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    /// Upstream's default: accept, and say so in `Warning` headers.
    Warn,
    Strict,
}

/// A request body in JSON, YAML or Kubernetes protobuf, by its Content-Type; `cannot`
/// words the error for a body that does not parse.
pub fn decode_body(headers: &HeaderMap, body: &[u8], cannot: impl Fn(String) -> ApiError) -> ApiResult<Value> {
    let ct = content_type(headers);
    Ok(match ct.as_str() {
        "application/json" => serde_json::from_slice(body).map_err(|e| cannot(e.to_string()))?,
        "application/yaml" => serde_yaml_ng::from_slice(body).map_err(|e| cannot(e.to_string()))?,
        PROTOBUF => crate::protobuf::decode(body).map_err(|e| {
            use crate::protobuf::ProtobufError;
            match e {
                ProtobufError::MissingMagic | ProtobufError::Malformed { .. } => cannot(e.to_string()),
                // Its message already says to send JSON instead.
                other => ApiError::UnsupportedMediaType(other.to_string()),
            }
        })?,
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json, application/yaml, application/vnd.kubernetes.protobuf (got {other})"
            )))
        }
    })
}

/// Decode a create/update body into an object of `res`. Unknown fields are dropped (never
/// stored); with `Strict` they (and duplicate fields) are a 400, with `Warn` they come back
/// as warning texts for `Warning` headers.
pub fn decode_object(
    res: &Resource,
    headers: &HeaderMap,
    body: &[u8],
    validation: FieldValidation,
) -> ApiResult<(Value, Vec<String>)> {
    let cannot = |why: String| {
        ApiError::BadRequest(format!(
            "{} in version \"{}\" cannot be handled as a {}: {why}",
            res.kind, res.version, res.kind
        ))
    };
    let ct = content_type(headers);
    let mut obj = decode_body(headers, body, cannot)?;
    if !obj.is_object() {
        return Err(cannot("the body must be an object".into()));
    }
    // Protobuf has no unknown or duplicate fields by construction.
    let problems = match (validation, ct.as_str()) {
        (FieldValidation::Ignore, _) | (_, PROTOBUF) => Vec::new(),
        (_, "application/json") => crate::validation::strict_errors(res.plural, body).map_err(cannot)?,
        _ => crate::validation::unknown_fields(res.plural, &obj).map_err(cannot)?,
    };
    if validation == FieldValidation::Strict && !problems.is_empty() {
        return Err(cannot(format!("strict decoding error: {}", problems.join(", "))));
    }
    crate::validation::drop_unknown_fields(res.plural, &mut obj).map_err(cannot)?;
    Ok((obj, problems))
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
        assert_eq!(output(&h, None).unwrap(), Output::Table(Include::Metadata));
        assert_eq!(
            output(&accept("application/vnd.kubernetes.protobuf,application/json"), None).unwrap(),
            Output::Object
        );
        assert_eq!(output(&HeaderMap::new(), None).unwrap(), Output::Object);
        assert!(output(&accept("application/vnd.kubernetes.protobuf"), None).is_err());
    }

    #[test]
    fn a_missing_content_type_is_json() {
        assert_eq!(content_type(&HeaderMap::new()), "application/json");
    }
}
