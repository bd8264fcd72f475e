//! [`resolve`] against hand-built objects: precedence, expansion, optional sources and
//! upstream's messages.

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, ConfigMapKeySelector, EnvVar, ObjectFieldSelector, PodSpec, Secret, SecretEnvSource,
    SecretKeySelector,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;

use super::*;

fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta { name: Some("p".into()), namespace: Some("default".into()), ..ObjectMeta::default() },
        spec: Some(PodSpec::default()),
        status: None,
    }
}

fn objects() -> Objects {
    let cm = ConfigMap {
        data: Some([("color".to_string(), "blue".to_string()), ("1bad".to_string(), "x".to_string())].into()),
        ..ConfigMap::default()
    };
    let secret =
        Secret { data: Some([("password".to_string(), ByteString(b"hunter2".to_vec()))].into()), ..Secret::default() };
    let mut o = Objects::default();
    o.config_maps.insert("settings".into(), Some(cm));
    o.config_maps.insert("gone".into(), None);
    o.secrets.insert("creds".into(), Some(secret));
    o
}

fn literal(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..EnvVar::default() }
}

fn from(name: &str, source: EnvVarSource) -> EnvVar {
    EnvVar { name: name.into(), value_from: Some(source), ..EnvVar::default() }
}

fn cm_key(name: &str, key: &str, optional: Option<bool>) -> EnvVarSource {
    let r = ConfigMapKeySelector { name: name.into(), key: key.into(), optional };
    EnvVarSource { config_map_key_ref: Some(r), ..EnvVarSource::default() }
}

fn secret_key(name: &str, key: &str, optional: Option<bool>) -> EnvVarSource {
    let r = SecretKeySelector { name: name.into(), key: key.into(), optional };
    EnvVarSource { secret_key_ref: Some(r), ..EnvVarSource::default() }
}

fn run(container: &Container) -> Result<Resolved, ConfigError> {
    let facts = NodeFacts { pod_ips: vec!["10.0.0.9".into()], ..NodeFacts::default() };
    resolve(&pod(), container, &objects(), &facts)
}

fn env_of(container: &Container) -> Vec<(String, String)> {
    run(container).unwrap().env
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn env_from_then_env_with_prefix_and_override_in_place() {
    let c = Container {
        env_from: Some(vec![
            EnvFromSource {
                prefix: Some("CFG_".into()),
                config_map_ref: Some(ConfigMapEnvSource { name: "settings".into(), optional: None }),
                ..EnvFromSource::default()
            },
            EnvFromSource {
                secret_ref: Some(SecretEnvSource { name: "creds".into(), optional: None }),
                ..EnvFromSource::default()
            },
        ]),
        env: Some(vec![literal("password", "overridden"), literal("EXTRA", "1")]),
        ..Container::default()
    };
    // `CFG_1bad` is valid with the prefix; `1bad` alone would not be.
    let expected = [("CFG_1bad", "x"), ("CFG_color", "blue"), ("password", "overridden"), ("EXTRA", "1")];
    assert_eq!(env_of(&c), pairs(&expected));
    let unprefixed = Container {
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource { name: "settings".into(), optional: None }),
            ..EnvFromSource::default()
        }]),
        ..Container::default()
    };
    assert_eq!(env_of(&unprefixed), pairs(&[("color", "blue")]), "invalid names are skipped");
}

#[test]
fn value_from_reads_keys_and_fields_and_references_expand_in_order() {
    let c = Container {
        env: Some(vec![
            literal("EARLY", "$(COLOR)"),
            from("COLOR", cm_key("settings", "color", None)),
            from("PASSWORD", secret_key("creds", "password", None)),
            from(
                "POD_IP",
                EnvVarSource {
                    field_ref: Some(ObjectFieldSelector { field_path: "status.podIP".into(), api_version: None }),
                    ..EnvVarSource::default()
                },
            ),
            literal("URL", "http://$(POD_IP):80/$(COLOR)?$$(COLOR)"),
        ]),
        command: Some(vec!["echo".into(), "$(PASSWORD)".into()]),
        args: Some(vec!["$(EARLY)".into(), "$(NOPE)".into()]),
        ..Container::default()
    };
    let r = run(&c).unwrap();
    let expected = [
        ("EARLY", "$(COLOR)"),
        ("COLOR", "blue"),
        ("PASSWORD", "hunter2"),
        ("POD_IP", "10.0.0.9"),
        ("URL", "http://10.0.0.9:80/blue?$(COLOR)"),
    ];
    assert_eq!(r.env, pairs(&expected));
    assert_eq!(r.command, ["echo", "hunter2"]);
    assert_eq!(r.args, ["$(COLOR)", "$(NOPE)"], "args see the final env; unknown names stay");
}

#[test]
fn missing_required_sources_fail_with_upstream_messages_and_optional_ones_are_skipped() {
    let one = |source: EnvVarSource| Container { env: Some(vec![from("V", source)]), ..Container::default() };
    let err = |c: &Container| run(c).unwrap_err().0;
    assert_eq!(err(&one(cm_key("gone", "k", None))), "configmap \"gone\" not found");
    assert_eq!(err(&one(cm_key("never-fetched", "k", Some(false)))), "configmap \"never-fetched\" not found");
    assert_eq!(err(&one(cm_key("settings", "k", None))), "couldn't find key k in ConfigMap default/settings");
    assert_eq!(err(&one(secret_key("nope", "k", None))), "secret \"nope\" not found");
    assert_eq!(err(&one(secret_key("creds", "user", None))), "couldn't find key user in Secret default/creds");
    for optional in
        [cm_key("gone", "k", Some(true)), cm_key("settings", "k", Some(true)), secret_key("nope", "k", Some(true))]
    {
        assert!(env_of(&one(optional)).is_empty(), "an optional miss leaves the variable unset");
    }
    let env_from = |optional| Container {
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource { name: "gone".into(), optional }),
            ..EnvFromSource::default()
        }]),
        ..Container::default()
    };
    assert_eq!(err(&env_from(None)), "configmap \"gone\" not found");
    assert!(env_of(&env_from(Some(true))).is_empty());
    let bad_field = one(EnvVarSource {
        field_ref: Some(ObjectFieldSelector { field_path: "spec.nope".into(), api_version: None }),
        ..EnvVarSource::default()
    });
    assert_eq!(err(&bad_field), "unsupported fieldPath: spec.nope");
}

#[test]
fn env_var_names_follow_upstream() {
    for ok in ["A", "a_b", "_x", "-dash", ".dot", "X1"] {
        assert!(is_env_var_name(ok), "{ok}");
    }
    for bad in ["", "1A", "a b", "a=b", "é"] {
        assert!(!is_env_var_name(bad), "{bad}");
    }
}
