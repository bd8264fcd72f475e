//! Resource URLs: which resource, namespace, object and subresource a path names.
//!
//! Forms (under `/api/v1` or `/apis/<group>/<version>`):
//! `<plural>` (cluster-scoped collection, or a namespaced resource across all namespaces),
//! `<plural>/<name>[/<sub>]`, `namespaces/<ns>/<plural>[/<name>[/<sub>]]`. The last form
//! wins over `namespaces/<name>/<sub>` only when `<plural>` is a namespaced resource of the
//! same group-version, which is how upstream tells them apart.

use crate::error::{ApiError, ApiResult};
use crate::resources::{self, Resource};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub res: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

/// The group, version and the rest of a resource path (`/api/v1/<rest>` or
/// `/apis/<group>/<version>/<rest>`); `None` for any other path.
pub fn split_api_path(path: &str) -> Option<(&str, &str, &str)> {
    if let Some(rest) = path.strip_prefix("/api/v1/") {
        return Some(("", "v1", rest));
    }
    let mut parts = path.strip_prefix("/apis/")?.splitn(3, '/');
    Some((parts.next()?, parts.next()?, parts.next()?))
}

pub fn parse(group: &str, version: &str, rest: &str) -> ApiResult<Target> {
    let segs: Vec<&str> = rest.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let not_found = || ApiError::NoRoute;
    let namespaced_form = segs.len() >= 3
        && segs[0] == "namespaces"
        && resources::lookup(group, version, segs[2]).is_some_and(|r| r.namespaced);
    let (namespace, rest) = if namespaced_form { (Some(segs[1].to_string()), &segs[2..]) } else { (None, &segs[..]) };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return Err(not_found()),
    };
    let res = resources::lookup(group, version, plural).ok_or_else(not_found)?;
    if namespace.is_some() && !res.namespaced {
        return Err(not_found());
    }
    if res.namespaced && namespace.is_none() && name.is_some() {
        // `/api/v1/pods/x`: a namespaced object needs its namespace.
        return Err(not_found());
    }
    if let Some(s) = &sub {
        if res.subresource(s).is_none() {
            return Err(not_found());
        }
    }
    Ok(Target { res, namespace, name, sub })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_url_forms_apart() {
        let t = parse("", "v1", "namespaces/default/pods/web/log").unwrap();
        assert_eq!(
            (t.res.plural, t.namespace.as_deref(), t.name.as_deref(), t.sub.as_deref()),
            ("pods", Some("default"), Some("web"), Some("log"))
        );
        let t = parse("", "v1", "namespaces/default").unwrap();
        assert_eq!((t.res.plural, t.namespace, t.name.as_deref()), ("namespaces", None, Some("default")));
        let t = parse("", "v1", "namespaces/kube-system/status").unwrap();
        assert_eq!(
            (t.res.plural, t.name.as_deref(), t.sub.as_deref()),
            ("namespaces", Some("kube-system"), Some("status"))
        );
        let t = parse("apps", "v1", "deployments").unwrap();
        assert_eq!((t.res.plural, t.namespace), ("deployments", None));
        assert!(parse("", "v1", "pods/web").is_err());
        assert!(parse("", "v1", "namespaces/a/nodes").is_err());
        assert!(parse("", "v1", "namespaces/a/pods/b/c/d").is_err());
        assert!(parse("", "v1", "namespaces/a/pods/b/scale").is_err());
        assert!(parse("", "v1", "widgets").is_err());
    }
}
