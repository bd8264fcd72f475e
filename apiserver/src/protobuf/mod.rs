//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`)
//! into the unstructured JSON object the rest of the API server handles.
//!
//! kubectl 1.32 sends every `kubectl create <generator>` body as protobuf and never falls back
//! to JSON, so the server must read it. Responses stay JSON (clients accept both).
//!
//! Data flow: body → [`envelope`] (`k8s\0` magic + `runtime.Unknown` with apiVersion, kind
//! and the raw object) → the schema table registered for that apiVersion/kind → [`walk`],
//! which reads the raw message with [`wire`] and builds a `serde_json::Value` using the
//! table, with [`value`] converting the apimachinery special types (Time, IntOrString,
//! Quantity, bytes).
//!
//! Why a hand-written walker over field tables instead of the `k8s-pb` crate: `k8s-pb` gives
//! prost structs for every API group (a large build) with no serde support, so each kind
//! would still need a hand-written conversion to JSON, field by field, plus the same
//! special-casing of gogo's zero values. A table per message (number, JSON name, kind,
//! pointer or not) is the same facts in one line per field, and the walker is the only code
//! that interprets them. It also makes the zero-value rule exact: `Card::One` (Go non-pointer,
//! always written by gogo, zero = unset, dropped) vs `Card::Pointer` (written only when set,
//! zero kept, e.g. `spec.replicas: 0`); see `schema.rs` and `walk.rs`.
//!
//! Invariants:
//! - no input can panic the decoder; every read is bounds-checked and recursion depth is
//!   bounded by the (acyclic) schema, not by the input;
//! - a non-zero field the schema does not know is an error, never silently dropped;
//! - the returned object always has `apiVersion` and `kind` from the envelope, and never a
//!   `status` (the server owns status; it is read and discarded).

mod authentication;
mod authorization;
mod container;
mod core_v1;
#[cfg(test)]
mod encode;
mod envelope;
mod error;
mod meta;
mod pod;
mod rbac;
mod schema;
mod value;
mod volume;
mod walk;
mod wire;
mod workloads;

use serde_json::Value;

pub use error::ProtobufError;

use schema::Message;

/// The Content-Type of Kubernetes protobuf bodies (media type only; clients may add
/// parameters, which carry nothing for request bodies).
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Every apiVersion/kind this decoder has a schema for: what kubectl 1.32's `create`
/// generators send as protobuf, restricted to kinds this server serves, plus the
/// SelfSubjectAccessReview of `kubectl auth can-i` and the TokenRequest of `kubectl create
/// token`.
static KINDS: &[(&str, &str, &Message)] = &[
    ("v1", "Namespace", &core_v1::NAMESPACE),
    ("v1", "ConfigMap", &core_v1::CONFIG_MAP),
    ("v1", "Secret", &core_v1::SECRET),
    ("v1", "Service", &core_v1::SERVICE),
    ("v1", "ServiceAccount", &core_v1::SERVICE_ACCOUNT),
    ("apps/v1", "Deployment", &workloads::DEPLOYMENT),
    ("batch/v1", "Job", &workloads::JOB),
    ("policy/v1", "PodDisruptionBudget", &workloads::POD_DISRUPTION_BUDGET),
    ("rbac.authorization.k8s.io/v1", "Role", &rbac::ROLE),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", &rbac::CLUSTER_ROLE),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", &rbac::ROLE_BINDING),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", &rbac::CLUSTER_ROLE_BINDING),
    // Not in the resource table: a create-only review endpoint, never stored.
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview", &authorization::SELF_SUBJECT_ACCESS_REVIEW),
    ("authentication.k8s.io/v1", "TokenRequest", &authentication::TOKEN_REQUEST),
];

fn schema_for(api_version: &str, kind: &str) -> Option<&'static Message> {
    KINDS.iter().find(|(v, k, _)| *v == api_version && *k == kind).map(|(_, _, m)| *m)
}

/// Decodes a protobuf request body into the object as upstream JSON would spell it:
/// camelCase members, `apiVersion`/`kind` from the envelope, bytes as base64, times as
/// RFC 3339, IntOrString as a number or string, Quantity as its string. Unset non-pointer
/// fields (empty strings, zeros, empty messages, the zero time) are left out; pointer fields
/// keep their zero values.
///
/// The caller still checks that apiVersion/kind match the URL, as for JSON bodies.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = envelope::Envelope::parse(body)?;
    let Some(schema) = schema_for(&envelope.api_version, &envelope.kind) else {
        return Err(ProtobufError::UnsupportedKind { api_version: envelope.api_version, kind: envelope.kind });
    };
    let mut object = walk::message(envelope.raw, schema, &walk::Path::Root)?;
    object.insert("apiVersion".into(), Value::String(envelope.api_version));
    object.insert("kind".into(), Value::String(envelope.kind));
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::encode::{body, int_or_string, int_or_string_str, meta, object, Pb};
    use super::*;

    const FIXTURES: &[(&str, &[u8])] = &[
        ("configmap", include_bytes!("fixtures/kubectl-1.32-create-configmap.pb")),
        ("deployment", include_bytes!("fixtures/kubectl-1.32-create-deployment.pb")),
        ("job", include_bytes!("fixtures/kubectl-1.32-create-job.pb")),
        ("namespace", include_bytes!("fixtures/kubectl-1.32-create-namespace.pb")),
        ("secret", include_bytes!("fixtures/kubectl-1.32-create-secret.pb")),
        ("service", include_bytes!("fixtures/kubectl-1.32-create-service.pb")),
    ];

    fn fixture(name: &str) -> Value {
        let (_, bytes) = FIXTURES.iter().find(|(n, _)| *n == name).expect("fixture listed");
        decode(bytes).unwrap()
    }

    #[test]
    fn kubectl_create_configmap() {
        let want = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1"}, "data": {"a": "b"}});
        assert_eq!(fixture("configmap"), want);
    }

    #[test]
    fn kubectl_create_namespace() {
        assert_eq!(fixture("namespace"), json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}}));
    }

    #[test]
    fn kubectl_create_secret() {
        let want =
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"}, "data": {"password": "czNjcjN0"}});
        assert_eq!(fixture("secret"), want);
    }

    #[test]
    fn kubectl_create_service() {
        let want = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s1", "labels": {"app": "s1"}},
            "spec": {
                "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                "selector": {"app": "s1"},
                "type": "ClusterIP",
            },
        });
        assert_eq!(fixture("service"), want);
    }

    #[test]
    fn kubectl_create_deployment() {
        let want = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "hello", "labels": {"app": "hello"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "hello"}},
                "template": {
                    "metadata": {"labels": {"app": "hello"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]},
                },
            },
        });
        assert_eq!(fixture("deployment"), want);
    }

    #[test]
    fn kubectl_create_job() {
        let want = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j1"},
            "spec": {"template": {"spec": {"containers": [{"name": "j1", "image": "busybox"}], "restartPolicy": "Never"}}},
        });
        assert_eq!(fixture("job"), want);
    }

    /// Where each fixture's `raw` ends: only the empty contentEncoding and contentType
    /// (`1a 00 22 00`) follow it.
    fn raw_end(bytes: &[u8]) -> usize {
        assert!(bytes.ends_with(&[0x1a, 0x00, 0x22, 0x00]));
        bytes.len() - 4
    }

    #[test]
    fn truncated_fixtures_fail_cleanly_at_every_length() {
        for (name, bytes) in FIXTURES {
            let full = decode(bytes).unwrap();
            for cut in 0..bytes.len() {
                let got = decode(&bytes[..cut]);
                let end = raw_end(bytes);
                if [end, end + 2].contains(&cut) {
                    // A cut between the optional trailing envelope fields leaves a valid body.
                    assert_eq!(got.as_ref(), Ok(&full), "{name} cut at {cut}");
                } else {
                    assert!(got.is_err(), "{name} cut at {cut} decoded to {got:?}");
                }
            }
        }
    }

    #[test]
    fn corrupted_fixtures_never_panic() {
        // Every byte of every fixture replaced by a handful of values that hit the edge cases
        // (zero, continuation bit, wire types 3-7, 0xff).
        for (_, bytes) in FIXTURES {
            for i in 0..bytes.len() {
                for b in [0x00, 0x01, 0x07, 0x0b, 0x0e, 0x7f, 0x80, 0xff] {
                    let mut corrupted = bytes.to_vec();
                    corrupted[i] = b;
                    let _ = decode(&corrupted);
                }
            }
        }
    }

    #[test]
    fn body_without_magic_is_rejected() {
        assert_eq!(decode(br#"{"apiVersion":"v1","kind":"ConfigMap"}"#), Err(ProtobufError::MissingMagic));
        let (_, bytes) = FIXTURES[0];
        assert_eq!(decode(&bytes[4..]), Err(ProtobufError::MissingMagic));
    }

    #[test]
    fn unsupported_kinds_are_named() {
        let pod = body("v1", "Pod", object("p"));
        let want = ProtobufError::UnsupportedKind { api_version: "v1".into(), kind: "Pod".into() };
        assert_eq!(decode(&pod), Err(want));
        let old = body("extensions/v1beta1", "Deployment", object("d"));
        let err = decode(&old).unwrap_err();
        assert!(matches!(err, ProtobufError::UnsupportedKind { .. }));
        assert!(err.to_string().contains("extensions/v1beta1, Kind=Deployment"), "{err}");
    }

    #[test]
    fn deployment_keeps_pointer_zeros() {
        // kubectl create deployment --replicas=0, with a rolling update of maxUnavailable 0.
        let rolling = Pb::default().msg(1, int_or_string(0)).msg(2, int_or_string_str("25%"));
        let strategy = Pb::default().str(1, "RollingUpdate").msg(2, rolling);
        let spec = Pb::default()
            .int(1, 0)
            .msg(2, Pb::default().entry(1, "app", "x"))
            .msg(3, Pb::default().msg(1, meta("")).msg(2, Pb::default()))
            .msg(4, strategy)
            .int(5, 0)
            .int(7, 0);
        let raw = object("x").msg(2, spec).msg(3, Pb::default().int(1, 0));
        let want = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "x"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            },
        });
        assert_eq!(decode(&body("apps/v1", "Deployment", raw)).unwrap(), want);
    }

    #[test]
    fn pod_disruption_budget() {
        let requirement = Pb::default().str(1, "tier").str(2, "In").str(3, "web").str(3, "api");
        let selector = Pb::default().msg(2, requirement);
        let min_available = object("m").msg(2, Pb::default().msg(1, int_or_string_str("50%")).msg(2, selector));
        let want = json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "m"},
            "spec": {
                "minAvailable": "50%",
                "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]},
            },
        });
        assert_eq!(decode(&body("policy/v1", "PodDisruptionBudget", min_available)).unwrap(), want);

        let max_unavailable = object("u").msg(2, Pb::default().msg(2, Pb::default()).msg(3, int_or_string(0)));
        let got = decode(&body("policy/v1", "PodDisruptionBudget", max_unavailable)).unwrap();
        assert_eq!(got["spec"], json!({"selector": {}, "maxUnavailable": 0}));
    }

    #[test]
    fn secret_with_every_generator_field() {
        let data = Pb::default().str(1, "tls.key").bytes(2, &[0x00, 0xff, 0x01]);
        let raw = object("t")
            .msg(2, data)
            .str(3, "kubernetes.io/tls")
            .entry(4, "user", "admin")
            .int(5, 0)
            .msg(2, Pb::default().str(1, "empty").bytes(2, b""));
        let want = json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t"},
            "type": "kubernetes.io/tls",
            "data": {"tls.key": "AP8B", "empty": ""},
            "stringData": {"user": "admin"},
            "immutable": false,
        });
        assert_eq!(decode(&body("v1", "Secret", raw)).unwrap(), want);
    }

    #[test]
    fn configmap_binary_data_and_service_account() {
        let cm = object("c").msg(3, Pb::default().str(1, "bin").bytes(2, b"hi!")).int(4, 1);
        let got = decode(&body("v1", "ConfigMap", cm)).unwrap();
        assert_eq!(
            got,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "binaryData": {"bin": "aGkh"}, "immutable": true})
        );

        let sa = object("robot").msg(3, Pb::default().str(1, "regcred"));
        let got = decode(&body("v1", "ServiceAccount", sa)).unwrap();
        let want = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}, "imagePullSecrets": [{"name": "regcred"}]});
        assert_eq!(got, want);
    }

    fn service_port(name: &str, port: i64, target: Pb, node_port: i64) -> Pb {
        Pb::default().str(1, name).str(2, "TCP").int(3, port).msg(4, target).int(5, node_port)
    }

    #[test]
    fn services_of_each_type() {
        // kubectl create service nodeport n --tcp=80:http --node-port=30080
        let spec = Pb::default()
            .msg(1, service_port("80-http", 80, int_or_string_str("http"), 30080))
            .entry(2, "app", "n")
            .str(3, "")
            .str(4, "NodePort");
        let got = decode(&body("v1", "Service", object("n").msg(2, spec))).unwrap();
        let want = json!({"ports": [{"name": "80-http", "protocol": "TCP", "port": 80, "targetPort": "http", "nodePort": 30080}], "selector": {"app": "n"}, "type": "NodePort"});
        assert_eq!(got["spec"], want);

        // kubectl create service clusterip h --clusterip=None; a zero targetPort is unset.
        let spec = Pb::default().msg(1, service_port("", 5432, int_or_string(0), 0)).str(3, "None").str(4, "ClusterIP");
        let got = decode(&body("v1", "Service", object("h").msg(2, spec))).unwrap();
        assert_eq!(
            got["spec"],
            json!({"ports": [{"protocol": "TCP", "port": 5432}], "clusterIP": "None", "type": "ClusterIP"})
        );

        // kubectl create service externalname e --external-name=example.com
        let spec = Pb::default().str(4, "ExternalName").str(10, "example.com");
        let got = decode(&body("v1", "Service", object("e").msg(2, spec))).unwrap();
        assert_eq!(got["spec"], json!({"type": "ExternalName", "externalName": "example.com"}));
    }
}
