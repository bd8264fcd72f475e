//! A request as upstream's authorizers see it (`authorizer.Attributes`, built like
//! `RequestInfoFactory`).

use axum::http::Method;

use crate::http::query_is_watch;

/// What a request does, in RBAC's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    Resource {
        verb: String,
        group: String,
        resource: String,
        subresource: String,
        /// Empty for cluster-scoped resources and for lists across namespaces.
        namespace: String,
        /// Empty for collections.
        name: String,
    },
    NonResource {
        verb: String,
        path: String,
    },
}

impl Attributes {
    /// The attributes of `method path?query`.
    pub fn of_request(method: &Method, path: &str, query: Option<&str>) -> Self {
        let non_resource = || Attributes::NonResource { verb: method.as_str().to_lowercase(), path: path.to_string() };
        let Some((group, _version, rest)) = crate::http::split_api_path(path) else { return non_resource() };
        let mut parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        if parts.is_empty() {
            return non_resource();
        }
        let mut watch = query_is_watch(query);
        if parts[0] == "watch" {
            watch = true;
            parts.remove(0);
        }
        let mut namespace = String::new();
        if parts.first() == Some(&"namespaces") && parts.len() > 1 {
            namespace = parts[1].to_string();
            // `/namespaces/{ns}/status|finalize` are the namespace's own subresources.
            if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
                parts.drain(..2);
            }
        }
        let at = |i: usize| parts.get(i).map_or(String::new(), |s| s.to_string());
        let (resource, name, subresource) = (at(0), at(1), at(2));
        let verb = match *method {
            Method::GET | Method::HEAD if watch => "watch",
            Method::GET | Method::HEAD if name.is_empty() => "list",
            Method::GET | Method::HEAD => "get",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE if name.is_empty() => "deletecollection",
            Method::DELETE => "delete",
            _ => "",
        };
        Attributes::Resource {
            verb: verb.to_string(),
            group: group.to_string(),
            resource,
            subresource,
            namespace,
            name,
        }
    }

    pub fn verb(&self) -> &str {
        match self {
            Attributes::Resource { verb, .. } | Attributes::NonResource { verb, .. } => verb,
        }
    }

    /// Upstream's 403 message for `user`.
    pub fn forbidden_message(&self, user: &str) -> String {
        match self {
            Attributes::NonResource { verb, path } => {
                format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\"")
            }
            Attributes::Resource { verb, group, resource, subresource, namespace, name } => {
                let full = if subresource.is_empty() { resource.clone() } else { format!("{resource}/{subresource}") };
                let subject = if name.is_empty() { full.clone() } else { format!("{full} \"{name}\"") };
                let scope = if namespace.is_empty() {
                    "at the cluster scope".to_string()
                } else {
                    format!("in the namespace \"{namespace}\"")
                };
                format!(
                    "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{full}\" in API group \"{group}\" \
                     {scope}"
                )
            }
        }
    }
}

/// Attributes spelt out in tests: verb, group, resource, subresource, namespace, name.
#[cfg(test)]
pub(crate) mod test_support {
    use super::Attributes;

    pub(crate) fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_support::res;

    #[test]
    fn requests_map_to_upstream_attributes() {
        let of = |m: Method, p: &str, q: Option<&str>| Attributes::of_request(&m, p, q);
        assert_eq!(of(Method::GET, "/api/v1/namespaces/a/pods", None), res("list", "", "pods", "", "a", ""));
        assert_eq!(of(Method::GET, "/api/v1/pods", Some("watch=true")), res("watch", "", "pods", "", "", ""));
        assert_eq!(of(Method::GET, "/api/v1/watch/namespaces/a/pods/p", None), res("watch", "", "pods", "", "a", "p"));
        assert_eq!(
            of(Method::POST, "/api/v1/namespaces/a/pods/p/exec", None),
            res("create", "", "pods", "exec", "a", "p")
        );
        assert_eq!(
            of(Method::PATCH, "/apis/apps/v1/namespaces/a/deployments/web/scale", None),
            res("patch", "apps", "deployments", "scale", "a", "web")
        );
        assert_eq!(
            of(Method::DELETE, "/api/v1/namespaces/a/pods", None),
            res("deletecollection", "", "pods", "", "a", "")
        );
        assert_eq!(of(Method::GET, "/api/v1/namespaces/a", None), res("get", "", "namespaces", "", "a", "a"));
        assert_eq!(
            of(Method::PUT, "/api/v1/namespaces/a/finalize", None),
            res("update", "", "namespaces", "finalize", "a", "a")
        );
        assert_eq!(of(Method::GET, "/api/v1/nodes/n1", None), res("get", "", "nodes", "", "", "n1"));
        for path in ["/api", "/api/v1", "/apis/apps/v1", "/healthz", "/metrics", "/openapi/v3"] {
            assert_eq!(of(Method::GET, path, None), Attributes::NonResource { verb: "get".into(), path: path.into() });
        }
    }

    #[test]
    fn forbidden_messages_are_upstreams() {
        assert_eq!(
            res("list", "", "pods", "", "default", "").forbidden_message("jane"),
            "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        );
        assert_eq!(
            res("get", "", "nodes", "", "", "n1").forbidden_message("jane"),
            "nodes \"n1\" is forbidden: User \"jane\" cannot get resource \"nodes\" in API group \"\" at the cluster scope"
        );
        assert_eq!(
            res("create", "", "pods", "exec", "a", "p").forbidden_message("jane"),
            "pods/exec \"p\" is forbidden: User \"jane\" cannot create resource \"pods/exec\" in API group \"\" in the \
             namespace \"a\""
        );
        let path = Attributes::NonResource { verb: "get".into(), path: "/metrics".into() };
        assert_eq!(path.forbidden_message("jane"), "forbidden: User \"jane\" cannot get path \"/metrics\"");
    }
}
