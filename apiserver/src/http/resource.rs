//! Resource endpoints: one dispatcher for every verb on every served resource.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};

use super::negotiate::{self, FieldValidation, Output};
use super::query::Query;
use super::target::{self, Target};
use super::{json as respond_json, ApiState};
use crate::authz::node::NamedCreate;
use crate::error::{ApiError, ApiResult};
use crate::patch::PatchType;
use crate::registry::{meta, DeleteOptions, Part, ScaleChange, WriteOptions};
use crate::selector::FieldSelector;

/// What authorization leaves to the handler of a request it allowed: checks that need the
/// body, or the object's absence.
#[derive(Debug, Clone, Default)]
pub struct WriteChecks {
    /// For a PUT or PATCH whose caller may not create the object: the 403 should it be
    /// missing (see [`crate::registry::WriteOptions::create_denied`]).
    pub create_denied: Option<String>,
    /// For a create allowed only for one name (a node's own Node or Lease).
    pub named_create: Option<NamedCreate>,
    /// The caller is this node: its writes to its Node keep to NodeRestriction's labels
    /// ([`crate::authz::node::check_labels`]).
    pub node: Option<String>,
}

/// Everything a resource request carries.
struct Request {
    checks: WriteChecks,
    method: Method,
    target: Target,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
}

pub async fn core(
    State(s): State<Arc<ApiState>>,
    method: Method,
    Path(rest): Path<String>,
    RawQuery(q): RawQuery,
    checks: Option<Extension<WriteChecks>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let head = Head { method, query: q, checks: checks.map(|Extension(c)| c).unwrap_or_default() };
    serve(&s, "", "v1", &rest, head, headers, body).await
}

pub async fn grouped(
    State(s): State<Arc<ApiState>>,
    method: Method,
    Path((group, version, rest)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    checks: Option<Extension<WriteChecks>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let head = Head { method, query: q, checks: checks.map(|Extension(c)| c).unwrap_or_default() };
    serve(&s, &group, &version, &rest, head, headers, body).await
}

/// The method, query and authorization outcome of a request, before its path is parsed.
struct Head {
    method: Method,
    query: Option<String>,
    checks: WriteChecks,
}

async fn serve(
    s: &ApiState,
    group: &str,
    version: &str,
    rest: &str,
    head: Head,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let target = target::parse(group, version, rest)?;
        let Head { method, query, checks } = head;
        let req = Request { checks, method, target, query: Query::parse(query.as_deref()), headers, body };
        dispatch(s, req).await
    }
    .await;
    result.unwrap_or_else(axum::response::IntoResponse::into_response)
}

async fn dispatch(s: &ApiState, req: Request) -> ApiResult<Response> {
    let sub = req.target.sub.clone();
    match (req.target.name.is_some(), sub.as_deref()) {
        (false, _) => collection(s, req).await,
        (true, None) => item(s, req, Part::Main).await,
        (true, Some("status")) => item(s, req, Part::Status).await,
        (true, Some("scale")) => scale(s, req).await,
        (true, Some("binding")) => binding(s, req).await,
        (true, Some("eviction")) => eviction(s, req).await,
        (true, Some("finalize")) => finalize(s, req).await,
        (true, Some("token")) => token(s, req).await,
        (true, Some(other)) => super::pods::connect(s, &req.target, other, &req.method).await,
    }
}

fn method_not_allowed(req: &Request) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "the server does not allow this method on the requested resource ({})",
        req.method
    ))
}

fn ns(req: &Request) -> Option<&str> {
    req.target.namespace.as_deref()
}

fn name(req: &Request) -> &str {
    req.target.name.as_deref().expect("item requests have a name")
}

async fn collection(s: &ApiState, req: Request) -> ApiResult<Response> {
    let res = req.target.res;
    match req.method {
        Method::GET if req.query.is_watch()? => {
            super::watch::serve(s, res, ns(&req), req.query.watch_options()?, &req.query, &req.headers).await
        }
        Method::GET => {
            let output = negotiate::output(&req.headers, req.query.get("includeObject"))?;
            let list = s.registry.list(res, ns(&req), &req.query.list_options()?).await?;
            let body = match output {
                Output::Object => list.to_json(res),
                Output::Table(_) => negotiate::render(output, res.plural, &list.items, list.list_meta()),
            };
            Ok(respond_json(StatusCode::OK, body))
        }
        Method::POST => {
            let (obj, warnings) =
                negotiate::decode_object(res, &req.headers, &req.body, req.query.field_validation()?)?;
            if let Some(named) = &req.checks.named_create {
                named.check(res, &obj)?;
            }
            if let (Some(node), "nodes") = (&req.checks.node, res.plural) {
                crate::authz::node::check_labels(node, None, &obj)?;
            }
            let created = s.registry.create(res, ns(&req), obj, &req.query.write_options()?).await?;
            Ok(with_warnings(respond_json(StatusCode::CREATED, created), &warnings))
        }
        Method::DELETE => {
            let opts = delete_options(&req)?;
            let deleted = s.registry.delete_collection(res, ns(&req), &req.query.list_options()?, &opts).await?;
            Ok(respond_json(StatusCode::OK, deleted.to_json(res)))
        }
        _ => Err(method_not_allowed(&req)),
    }
}

/// The query's write options with what authorization found out about this write.
fn write_options(req: &Request) -> ApiResult<WriteOptions> {
    let checks = &req.checks;
    Ok(WriteOptions {
        create_denied: checks.create_denied.clone(),
        node: checks.node.clone(),
        ..req.query.write_options()?
    })
}

async fn item(s: &ApiState, req: Request, part: Part) -> ApiResult<Response> {
    let res = req.target.res;
    match req.method {
        Method::GET if req.query.is_watch()? && part == Part::Main => {
            // The deprecated single-object watch: a watch with a name selector.
            let mut opts = req.query.watch_options()?;
            let by_name = FieldSelector::parse(&format!("metadata.name={}", name(&req)))
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            opts.field = Some(by_name);
            super::watch::serve(s, res, ns(&req), opts, &req.query, &req.headers).await
        }
        Method::GET => {
            let output = negotiate::output(&req.headers, req.query.get("includeObject"))?;
            let obj = s.registry.get(res, ns(&req), name(&req)).await?;
            Ok(respond_json(StatusCode::OK, negotiate::render_one(output, res.plural, &obj)))
        }
        Method::PUT => {
            let (obj, warnings) =
                negotiate::decode_object(res, &req.headers, &req.body, req.query.field_validation()?)?;
            let opts = write_options(&req)?;
            let (obj, created) = s.registry.update(res, ns(&req), name(&req), obj, part, &opts).await?;
            let code = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok(with_warnings(respond_json(code, obj), &warnings))
        }
        Method::PATCH => {
            let patch_type = patch_type(&req)?;
            let opts = write_options(&req)?;
            let (obj, created) =
                s.registry.patch(res, ns(&req), name(&req), patch_type, &req.body, part, &opts).await?;
            Ok(respond_json(if created { StatusCode::CREATED } else { StatusCode::OK }, obj))
        }
        Method::DELETE if part == Part::Main => {
            let opts = delete_options(&req)?;
            let deleted = s.registry.delete(res, ns(&req), name(&req), &opts).await?;
            if !deleted.gone && opts.orphan_dependents == Some(false) {
                return Ok(respond_json(StatusCode::ACCEPTED, deleted.object));
            }
            Ok(deleted_response(res, deleted))
        }
        _ => Err(method_not_allowed(&req)),
    }
}

/// Upstream answers 200 with the object while it lingers (finalizers, graceful pods: its
/// 202 is reserved for an explicit `orphanDependents=false`, which nobody sends any more);
/// once gone, pods return the object and the rest a Success Status.
fn deleted_response(res: &crate::resources::Resource, d: crate::registry::Deleted) -> Response {
    if !d.gone || res.plural == "pods" {
        return respond_json(StatusCode::OK, d.object);
    }
    let mut details = json!({"name": meta::name(&d.object), "kind": res.plural,
                             "uid": meta::meta_str(&d.object, "uid")});
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    respond_json(
        StatusCode::OK,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
    )
}

/// Add upstream-style `Warning: 299 - "<text>"` headers (kubectl prints them).
fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = axum::http::HeaderValue::from_str(&text) {
            resp.headers_mut().append(axum::http::header::WARNING, v);
        }
    }
    resp
}

fn patch_type(req: &Request) -> ApiResult<PatchType> {
    let ct = negotiate::content_type(&req.headers);
    PatchType::from_content_type(&ct).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, \
             application/strategic-merge-patch+json (got {ct})"
        ))
    })
}

/// DeleteOptions from the query, overridden by a body when one is sent.
fn delete_options(req: &Request) -> ApiResult<DeleteOptions> {
    let mut opts = req.query.delete_options()?;
    if !req.body.iter().all(u8::is_ascii_whitespace) {
        let body: Value = serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions body: {e}")))?;
        opts.merge_body(&body)?;
    }
    Ok(opts)
}

async fn scale(s: &ApiState, req: Request) -> ApiResult<Response> {
    let res = req.target.res;
    let opts = req.query.write_options()?;
    let scale = match req.method {
        Method::GET => s.registry.get_scale(res, ns(&req), name(&req)).await?,
        Method::PUT => {
            let body: Value =
                serde_json::from_slice(&req.body).map_err(|e| ApiError::BadRequest(format!("invalid Scale: {e}")))?;
            s.registry.write_scale(res, ns(&req), name(&req), ScaleChange::Replace(body), &opts).await?
        }
        Method::PATCH => {
            let t = patch_type(&req)?;
            s.registry.write_scale(res, ns(&req), name(&req), ScaleChange::Patch(t, &req.body), &opts).await?
        }
        _ => return Err(method_not_allowed(&req)),
    };
    Ok(respond_json(StatusCode::OK, scale))
}

fn success(code: StatusCode) -> Response {
    respond_json(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code.as_u16()}),
    )
}

async fn binding(s: &ApiState, req: Request) -> ApiResult<Response> {
    if req.method != Method::POST {
        return Err(method_not_allowed(&req));
    }
    let body: Value =
        serde_json::from_slice(&req.body).map_err(|e| ApiError::BadRequest(format!("invalid Binding: {e}")))?;
    let ns = ns(&req).unwrap_or("default");
    s.registry.bind(ns, name(&req), &body, &req.query.write_options()?).await?;
    Ok(success(StatusCode::CREATED))
}

async fn finalize(s: &ApiState, req: Request) -> ApiResult<Response> {
    if req.method != Method::PUT {
        return Err(method_not_allowed(&req));
    }
    let (body, _) = negotiate::decode_object(req.target.res, &req.headers, &req.body, FieldValidation::Ignore)?;
    let ns = s.registry.finalize_namespace(name(&req), &body, &req.query.write_options()?).await?;
    Ok(respond_json(StatusCode::OK, ns))
}

/// `serviceaccounts/<name>/token`: a TokenRequest ([`crate::serviceaccount::request`]).
async fn token(s: &ApiState, req: Request) -> ApiResult<Response> {
    if req.method != Method::POST {
        return Err(method_not_allowed(&req));
    }
    let cannot = |why: String| {
        ApiError::BadRequest(format!("TokenRequest in version \"v1\" cannot be handled as a TokenRequest: {why}"))
    };
    let body = negotiate::decode_body(&req.headers, &req.body, cannot)?;
    let accounts = s.config.service_accounts.as_deref();
    let (ns, node) = (ns(&req).unwrap_or("default"), req.checks.node.as_deref());
    let answer = crate::serviceaccount::request::create(&s.registry, accounts, ns, name(&req), node, body).await?;
    Ok(respond_json(StatusCode::CREATED, answer))
}

async fn eviction(s: &ApiState, req: Request) -> ApiResult<Response> {
    if req.method != Method::POST {
        return Err(method_not_allowed(&req));
    }
    let body: Value =
        serde_json::from_slice(&req.body).map_err(|e| ApiError::BadRequest(format!("invalid Eviction: {e}")))?;
    s.registry.evict(ns(&req).unwrap_or("default"), name(&req), &body).await?;
    Ok(success(StatusCode::CREATED))
}
