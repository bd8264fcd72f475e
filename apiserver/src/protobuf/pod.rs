//! Schema tables for the pod template: `PodTemplateSpec`, `PodSpec` and the scheduling and
//! security types it holds (containers are in `container.rs`, volumes in `volume.rs`).
//!
//! Field numbers and names are those of upstream `generated.proto` (k8s.io/api v0.32.4);
//! `one`/`ptr` follow whether the Go field is a pointer (see `schema.rs`). Not listed:
//! `ephemeralContainers` (34), which the API refuses on create and in templates anyway.

use super::container::{
    APP_ARMOR_PROFILE, CONTAINER, RESOURCE_REQUIREMENTS, SECCOMP_PROFILE, SE_LINUX_OPTIONS,
    WINDOWS_SECURITY_CONTEXT_OPTIONS,
};
use super::core_v1::LOCAL_OBJECT_REFERENCE;
use super::meta::{LABEL_SELECTOR, OBJECT_META};
use super::schema::Kind::*;
use super::schema::{map, msg, one, ptr, rep, Message};
use super::volume::VOLUME;

/// `PodTemplateSpec` (core/v1).
pub(super) static POD_TEMPLATE_SPEC: Message =
    msg("PodTemplateSpec", &[one(1, "metadata", Msg(&OBJECT_META)), one(2, "spec", Msg(&POD_SPEC))]);

/// `PodSpec` (core/v1).
pub(super) static POD_SPEC: Message = msg(
    "PodSpec",
    &[
        rep(1, "volumes", Msg(&VOLUME)),
        rep(20, "initContainers", Msg(&CONTAINER)),
        rep(2, "containers", Msg(&CONTAINER)),
        one(3, "restartPolicy", Str),
        ptr(4, "terminationGracePeriodSeconds", Int),
        ptr(5, "activeDeadlineSeconds", Int),
        one(6, "dnsPolicy", Str),
        map(7, "nodeSelector", Str),
        one(8, "serviceAccountName", Str),
        one(9, "serviceAccount", Str),
        ptr(21, "automountServiceAccountToken", Bool),
        one(10, "nodeName", Str),
        one(11, "hostNetwork", Bool),
        one(12, "hostPID", Bool),
        one(13, "hostIPC", Bool),
        ptr(27, "shareProcessNamespace", Bool),
        ptr(14, "securityContext", Msg(&POD_SECURITY_CONTEXT)),
        rep(15, "imagePullSecrets", Msg(&LOCAL_OBJECT_REFERENCE)),
        one(16, "hostname", Str),
        one(17, "subdomain", Str),
        ptr(18, "affinity", Msg(&AFFINITY)),
        one(19, "schedulerName", Str),
        rep(22, "tolerations", Msg(&TOLERATION)),
        rep(23, "hostAliases", Msg(&HOST_ALIAS)),
        one(24, "priorityClassName", Str),
        ptr(25, "priority", Int),
        ptr(26, "dnsConfig", Msg(&POD_DNS_CONFIG)),
        rep(28, "readinessGates", Msg(&POD_READINESS_GATE)),
        ptr(29, "runtimeClassName", Str),
        ptr(30, "enableServiceLinks", Bool),
        ptr(31, "preemptionPolicy", Str),
        map(32, "overhead", Quantity),
        rep(33, "topologySpreadConstraints", Msg(&TOPOLOGY_SPREAD_CONSTRAINT)),
        ptr(35, "setHostnameAsFQDN", Bool),
        ptr(36, "os", Msg(&POD_OS)),
        ptr(37, "hostUsers", Bool),
        rep(38, "schedulingGates", Msg(&POD_SCHEDULING_GATE)),
        rep(39, "resourceClaims", Msg(&POD_RESOURCE_CLAIM)),
        ptr(40, "resources", Msg(&RESOURCE_REQUIREMENTS)),
    ],
);

/// `PodSecurityContext` (core/v1).
pub(super) static POD_SECURITY_CONTEXT: Message = msg(
    "PodSecurityContext",
    &[
        ptr(1, "seLinuxOptions", Msg(&SE_LINUX_OPTIONS)),
        ptr(8, "windowsOptions", Msg(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        ptr(2, "runAsUser", Int),
        ptr(6, "runAsGroup", Int),
        ptr(3, "runAsNonRoot", Bool),
        rep(4, "supplementalGroups", Int),
        ptr(12, "supplementalGroupsPolicy", Str),
        ptr(5, "fsGroup", Int),
        rep(7, "sysctls", Msg(&SYSCTL)),
        ptr(9, "fsGroupChangePolicy", Str),
        ptr(10, "seccompProfile", Msg(&SECCOMP_PROFILE)),
        ptr(11, "appArmorProfile", Msg(&APP_ARMOR_PROFILE)),
        ptr(13, "seLinuxChangePolicy", Str),
    ],
);

/// `Sysctl` (core/v1).
pub(super) static SYSCTL: Message = msg("Sysctl", &[one(1, "name", Str), one(2, "value", Str)]);

/// `Affinity` (core/v1).
pub(super) static AFFINITY: Message = msg(
    "Affinity",
    &[
        ptr(1, "nodeAffinity", Msg(&NODE_AFFINITY)),
        ptr(2, "podAffinity", Msg(&POD_AFFINITY)),
        ptr(3, "podAntiAffinity", Msg(&POD_ANTI_AFFINITY)),
    ],
);

/// `NodeAffinity` (core/v1).
pub(super) static NODE_AFFINITY: Message = msg(
    "NodeAffinity",
    &[
        ptr(1, "requiredDuringSchedulingIgnoredDuringExecution", Msg(&NODE_SELECTOR)),
        rep(2, "preferredDuringSchedulingIgnoredDuringExecution", Msg(&PREFERRED_SCHEDULING_TERM)),
    ],
);

/// `NodeSelector` (core/v1).
pub(super) static NODE_SELECTOR: Message =
    msg("NodeSelector", &[rep(1, "nodeSelectorTerms", Msg(&NODE_SELECTOR_TERM))]);

/// `NodeSelectorTerm` (core/v1).
pub(super) static NODE_SELECTOR_TERM: Message = msg(
    "NodeSelectorTerm",
    &[
        rep(1, "matchExpressions", Msg(&NODE_SELECTOR_REQUIREMENT)),
        rep(2, "matchFields", Msg(&NODE_SELECTOR_REQUIREMENT)),
    ],
);

/// `NodeSelectorRequirement` (core/v1).
pub(super) static NODE_SELECTOR_REQUIREMENT: Message =
    msg("NodeSelectorRequirement", &[one(1, "key", Str), one(2, "operator", Str), rep(3, "values", Str)]);

/// `PreferredSchedulingTerm` (core/v1).
pub(super) static PREFERRED_SCHEDULING_TERM: Message =
    msg("PreferredSchedulingTerm", &[one(1, "weight", Int), one(2, "preference", Msg(&NODE_SELECTOR_TERM))]);

/// `PodAffinity` (core/v1).
pub(super) static POD_AFFINITY: Message = msg(
    "PodAffinity",
    &[
        rep(1, "requiredDuringSchedulingIgnoredDuringExecution", Msg(&POD_AFFINITY_TERM)),
        rep(2, "preferredDuringSchedulingIgnoredDuringExecution", Msg(&WEIGHTED_POD_AFFINITY_TERM)),
    ],
);

/// `PodAffinityTerm` (core/v1).
pub(super) static POD_AFFINITY_TERM: Message = msg(
    "PodAffinityTerm",
    &[
        ptr(1, "labelSelector", Msg(&LABEL_SELECTOR)),
        rep(2, "namespaces", Str),
        one(3, "topologyKey", Str),
        ptr(4, "namespaceSelector", Msg(&LABEL_SELECTOR)),
        rep(5, "matchLabelKeys", Str),
        rep(6, "mismatchLabelKeys", Str),
    ],
);

/// `WeightedPodAffinityTerm` (core/v1).
pub(super) static WEIGHTED_POD_AFFINITY_TERM: Message =
    msg("WeightedPodAffinityTerm", &[one(1, "weight", Int), one(2, "podAffinityTerm", Msg(&POD_AFFINITY_TERM))]);

/// `PodAntiAffinity` (core/v1).
pub(super) static POD_ANTI_AFFINITY: Message = msg(
    "PodAntiAffinity",
    &[
        rep(1, "requiredDuringSchedulingIgnoredDuringExecution", Msg(&POD_AFFINITY_TERM)),
        rep(2, "preferredDuringSchedulingIgnoredDuringExecution", Msg(&WEIGHTED_POD_AFFINITY_TERM)),
    ],
);

/// `Toleration` (core/v1).
pub(super) static TOLERATION: Message = msg(
    "Toleration",
    &[
        one(1, "key", Str),
        one(2, "operator", Str),
        one(3, "value", Str),
        one(4, "effect", Str),
        ptr(5, "tolerationSeconds", Int),
    ],
);

/// `HostAlias` (core/v1).
pub(super) static HOST_ALIAS: Message = msg("HostAlias", &[one(1, "ip", Str), rep(2, "hostnames", Str)]);

/// `PodDNSConfig` (core/v1).
pub(super) static POD_DNS_CONFIG: Message = msg(
    "PodDNSConfig",
    &[rep(1, "nameservers", Str), rep(2, "searches", Str), rep(3, "options", Msg(&POD_DNS_CONFIG_OPTION))],
);

/// `PodDNSConfigOption` (core/v1).
pub(super) static POD_DNS_CONFIG_OPTION: Message =
    msg("PodDNSConfigOption", &[one(1, "name", Str), ptr(2, "value", Str)]);

/// `PodReadinessGate` (core/v1).
pub(super) static POD_READINESS_GATE: Message = msg("PodReadinessGate", &[one(1, "conditionType", Str)]);

/// `TopologySpreadConstraint` (core/v1).
pub(super) static TOPOLOGY_SPREAD_CONSTRAINT: Message = msg(
    "TopologySpreadConstraint",
    &[
        one(1, "maxSkew", Int),
        one(2, "topologyKey", Str),
        one(3, "whenUnsatisfiable", Str),
        ptr(4, "labelSelector", Msg(&LABEL_SELECTOR)),
        ptr(5, "minDomains", Int),
        ptr(6, "nodeAffinityPolicy", Str),
        ptr(7, "nodeTaintsPolicy", Str),
        rep(8, "matchLabelKeys", Str),
    ],
);

/// `PodOS` (core/v1).
pub(super) static POD_OS: Message = msg("PodOS", &[one(1, "name", Str)]);

/// `PodSchedulingGate` (core/v1).
pub(super) static POD_SCHEDULING_GATE: Message = msg("PodSchedulingGate", &[one(1, "name", Str)]);

/// `PodResourceClaim` (core/v1).
pub(super) static POD_RESOURCE_CLAIM: Message = msg(
    "PodResourceClaim",
    &[one(1, "name", Str), ptr(3, "resourceClaimName", Str), ptr(4, "resourceClaimTemplateName", Str)],
);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::encode::{int_or_string, meta, Pb};
    use super::super::walk::{message, Path};
    use super::*;

    fn quantity(q: &str) -> Pb {
        Pb::default().str(1, q)
    }

    /// A container with everything `kubectl create deployment|job` can set, plus the usual
    /// hand-written extras, the way gogo writes it (zero non-pointer fields present).
    fn container() -> Pb {
        let port = Pb::default().str(1, "").int(2, 0).int(3, 80).str(4, "TCP").str(5, "");
        let env_value = Pb::default().str(1, "MODE").str(2, "prod");
        let secret_ref = Pb::default().msg(1, Pb::default().str(1, "db")).str(2, "password");
        let env_from_secret = Pb::default().str(1, "DB_PASSWORD").str(2, "").msg(3, Pb::default().msg(4, secret_ref));
        let resources = Pb::default()
            .msg(1, Pb::default().str(1, "memory").msg(2, quantity("128Mi")))
            .msg(2, Pb::default().str(1, "cpu").msg(2, quantity("100m")));
        let mount = Pb::default().str(1, "config").int(2, 1).str(3, "/etc/app").str(4, "").str(6, "");
        let probe = Pb::default().msg(1, Pb::default().msg(3, Pb::default().msg(1, int_or_string(80)).str(2, "")));
        Pb::default()
            .str(1, "app")
            .str(2, "nginx:1.25")
            .str(3, "sh")
            .str(3, "-c")
            .str(4, "exec nginx")
            .str(5, "")
            .msg(6, port)
            .msg(7, env_value)
            .msg(7, env_from_secret)
            .msg(8, resources)
            .msg(9, mount)
            .msg(11, probe)
            .str(13, "")
            .str(14, "IfNotPresent")
            .int(16, 0)
    }

    #[test]
    fn full_pod_template() {
        let config_volume = Pb::default()
            .str(1, "config")
            .msg(2, Pb::default().msg(19, Pb::default().msg(1, Pb::default().str(1, "app-config"))));
        let toleration = Pb::default().str(1, "dedicated").str(2, "Equal").str(3, "web").str(4, "NoSchedule");
        let requirement = Pb::default().str(1, "disk").str(2, "In").str(3, "ssd");
        let node_affinity =
            Pb::default().msg(1, Pb::default().msg(1, Pb::default().msg(1, Pb::default().msg(1, requirement))));
        let spec = Pb::default()
            .msg(1, config_volume)
            .msg(2, container())
            .str(3, "Always")
            .int(4, 30)
            .str(6, "ClusterFirst")
            .msg(7, Pb::default().str(1, "zone").str(2, "a"))
            .msg(14, Pb::default())
            .msg(18, node_affinity)
            .msg(22, toleration)
            .str(24, "");
        let template = Pb::default().msg(1, meta("").entry(11, "app", "web")).msg(2, spec);
        let got = message(&template.0, &POD_TEMPLATE_SPEC, &Path::Root).unwrap();
        let want = json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "volumes": [{"name": "config", "configMap": {"name": "app-config"}}],
                "containers": [{
                    "name": "app",
                    "image": "nginx:1.25",
                    "command": ["sh", "-c"],
                    "args": ["exec nginx"],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [
                        {"name": "MODE", "value": "prod"},
                        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    ],
                    "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "100m"}},
                    "volumeMounts": [{"name": "config", "readOnly": true, "mountPath": "/etc/app"}],
                    "readinessProbe": {"tcpSocket": {"port": 80}},
                    "imagePullPolicy": "IfNotPresent",
                }],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "nodeSelector": {"zone": "a"},
                "securityContext": {},
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}],
                }}},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
            },
        });
        assert_eq!(serde_json::Value::Object(got), want);
    }
}
