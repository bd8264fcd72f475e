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
        // Segments as the handlers see them: percent-decoded (an encoded '/' is refused
        // before this, see `http::authz`).
        let decoded: Vec<String> = rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let mut parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
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

    /// The namespace of a namespaced resource request.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Attributes::Resource { namespace, .. } if !namespace.is_empty() => Some(namespace),
            _ => None,
        }
    }

    /// The same request with another verb.
    pub fn with_verb(&self, new: &str) -> Self {
        let mut a = self.clone();
        match &mut a {
            Attributes::Resource { verb, .. } | Attributes::NonResource { verb, .. } => *verb = new.to_string(),
        }
        a
    }

    /// The extra verb a write to RBAC objects needs: `escalate` for roles, `bind` for bindings.
    pub fn escalation_verb(&self) -> Option<&'static str> {
        let Attributes::Resource { verb, group, resource, subresource, .. } = self else { return None };
        let writes = matches!(verb.as_str(), "create" | "update" | "patch");
        if group != "rbac.authorization.k8s.io" || !subresource.is_empty() || !writes {
            return None;
        }
        match resource.as_str() {
            "roles" | "clusterroles" => Some("escalate"),
            "rolebindings" | "clusterrolebindings" => Some("bind"),
            _ => None,
        }
    }

    /// For a PUT or PATCH of an object (which may create it): the create it amounts to then.
    pub fn create_on_write(&self) -> Option<Self> {
        match self {
            Attributes::Resource { verb, subresource, name, .. }
                if matches!(verb.as_str(), "update" | "patch") && subresource.is_empty() && !name.is_empty() =>
            {
                Some(self.with_verb("create"))
            }
            _ => None,
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
        // Segments are decoded as the handlers decode them.
        assert_eq!(of(Method::GET, "/api/v1/namespaces/a/%70ods/p", None), res("get", "", "pods", "", "a", "p"));
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
