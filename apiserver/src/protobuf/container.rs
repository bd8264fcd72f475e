//! Schema tables for `Container` and everything in it: ports, env, resources, mounts,
//! probes, lifecycle hooks and the security context.
//!
//! Field numbers and names are those of upstream `generated.proto` (k8s.io/api v0.32.4);
//! `one`/`ptr` follow whether the Go field is a pointer (see `schema.rs`). `Probe` embeds
//! `ProbeHandler` and the key selectors embed `LocalObjectReference` inline, as in JSON.

use super::core_v1::LOCAL_OBJECT_REFERENCE;
use super::schema::Kind::*;
use super::schema::{inline, map, msg, one, ptr, rep, Message};

/// `Container` (core/v1).
pub(super) static CONTAINER: Message = msg(
    "Container",
    &[
        one(1, "name", Str),
        one(2, "image", Str),
        rep(3, "command", Str),
        rep(4, "args", Str),
        one(5, "workingDir", Str),
        rep(6, "ports", Msg(&CONTAINER_PORT)),
        rep(19, "envFrom", Msg(&ENV_FROM_SOURCE)),
        rep(7, "env", Msg(&ENV_VAR)),
        one(8, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        rep(23, "resizePolicy", Msg(&CONTAINER_RESIZE_POLICY)),
        ptr(24, "restartPolicy", Str),
        rep(9, "volumeMounts", Msg(&VOLUME_MOUNT)),
        rep(21, "volumeDevices", Msg(&VOLUME_DEVICE)),
        ptr(10, "livenessProbe", Msg(&PROBE)),
        ptr(11, "readinessProbe", Msg(&PROBE)),
        ptr(22, "startupProbe", Msg(&PROBE)),
        ptr(12, "lifecycle", Msg(&LIFECYCLE)),
        one(13, "terminationMessagePath", Str),
        one(20, "terminationMessagePolicy", Str),
        one(14, "imagePullPolicy", Str),
        ptr(15, "securityContext", Msg(&SECURITY_CONTEXT)),
        one(16, "stdin", Bool),
        one(17, "stdinOnce", Bool),
        one(18, "tty", Bool),
    ],
);

/// `ContainerPort` (core/v1).
pub(super) static CONTAINER_PORT: Message = msg(
    "ContainerPort",
    &[
        one(1, "name", Str),
        one(2, "hostPort", Int),
        one(3, "containerPort", Int),
        one(4, "protocol", Str),
        one(5, "hostIP", Str),
    ],
);

/// `EnvFromSource` (core/v1).
pub(super) static ENV_FROM_SOURCE: Message = msg(
    "EnvFromSource",
    &[
        one(1, "prefix", Str),
        ptr(2, "configMapRef", Msg(&CONFIG_MAP_ENV_SOURCE)),
        ptr(3, "secretRef", Msg(&SECRET_ENV_SOURCE)),
    ],
);

/// `ConfigMapEnvSource` (core/v1).
pub(super) static CONFIG_MAP_ENV_SOURCE: Message =
    msg("ConfigMapEnvSource", &[inline(1, &LOCAL_OBJECT_REFERENCE), ptr(2, "optional", Bool)]);

/// `SecretEnvSource` (core/v1).
pub(super) static SECRET_ENV_SOURCE: Message =
    msg("SecretEnvSource", &[inline(1, &LOCAL_OBJECT_REFERENCE), ptr(2, "optional", Bool)]);

/// `EnvVar` (core/v1).
pub(super) static ENV_VAR: Message =
    msg("EnvVar", &[one(1, "name", Str), one(2, "value", Str), ptr(3, "valueFrom", Msg(&ENV_VAR_SOURCE))]);

/// `EnvVarSource` (core/v1).
pub(super) static ENV_VAR_SOURCE: Message = msg(
    "EnvVarSource",
    &[
        ptr(1, "fieldRef", Msg(&OBJECT_FIELD_SELECTOR)),
        ptr(2, "resourceFieldRef", Msg(&RESOURCE_FIELD_SELECTOR)),
        ptr(3, "configMapKeyRef", Msg(&CONFIG_MAP_KEY_SELECTOR)),
        ptr(4, "secretKeyRef", Msg(&SECRET_KEY_SELECTOR)),
    ],
);

/// `ConfigMapKeySelector` (core/v1).
pub(super) static CONFIG_MAP_KEY_SELECTOR: Message =
    msg("ConfigMapKeySelector", &[inline(1, &LOCAL_OBJECT_REFERENCE), one(2, "key", Str), ptr(3, "optional", Bool)]);

/// `SecretKeySelector` (core/v1).
pub(super) static SECRET_KEY_SELECTOR: Message =
    msg("SecretKeySelector", &[inline(1, &LOCAL_OBJECT_REFERENCE), one(2, "key", Str), ptr(3, "optional", Bool)]);

/// `ObjectFieldSelector` (core/v1).
pub(super) static OBJECT_FIELD_SELECTOR: Message =
    msg("ObjectFieldSelector", &[one(1, "apiVersion", Str), one(2, "fieldPath", Str)]);

/// `ResourceFieldSelector` (core/v1).
pub(super) static RESOURCE_FIELD_SELECTOR: Message =
    msg("ResourceFieldSelector", &[one(1, "containerName", Str), one(2, "resource", Str), one(3, "divisor", Quantity)]);

/// `ResourceRequirements` (core/v1).
pub(super) static RESOURCE_REQUIREMENTS: Message = msg(
    "ResourceRequirements",
    &[map(1, "limits", Quantity), map(2, "requests", Quantity), rep(3, "claims", Msg(&RESOURCE_CLAIM))],
);

/// `ResourceClaim` (core/v1).
pub(super) static RESOURCE_CLAIM: Message = msg("ResourceClaim", &[one(1, "name", Str), one(2, "request", Str)]);

/// `ContainerResizePolicy` (core/v1).
pub(super) static CONTAINER_RESIZE_POLICY: Message =
    msg("ContainerResizePolicy", &[one(1, "resourceName", Str), one(2, "restartPolicy", Str)]);

/// `VolumeMount` (core/v1).
pub(super) static VOLUME_MOUNT: Message = msg(
    "VolumeMount",
    &[
        one(1, "name", Str),
        one(2, "readOnly", Bool),
        ptr(7, "recursiveReadOnly", Str),
        one(3, "mountPath", Str),
        one(4, "subPath", Str),
        ptr(5, "mountPropagation", Str),
        one(6, "subPathExpr", Str),
    ],
);

/// `VolumeDevice` (core/v1).
pub(super) static VOLUME_DEVICE: Message = msg("VolumeDevice", &[one(1, "name", Str), one(2, "devicePath", Str)]);

/// `Probe` (core/v1).
pub(super) static PROBE: Message = msg(
    "Probe",
    &[
        inline(1, &PROBE_HANDLER),
        one(2, "initialDelaySeconds", Int),
        one(3, "timeoutSeconds", Int),
        one(4, "periodSeconds", Int),
        one(5, "successThreshold", Int),
        one(6, "failureThreshold", Int),
        ptr(7, "terminationGracePeriodSeconds", Int),
    ],
);

/// `ProbeHandler` (core/v1).
pub(super) static PROBE_HANDLER: Message = msg(
    "ProbeHandler",
    &[
        ptr(1, "exec", Msg(&EXEC_ACTION)),
        ptr(2, "httpGet", Msg(&HTTP_GET_ACTION)),
        ptr(3, "tcpSocket", Msg(&TCP_SOCKET_ACTION)),
        ptr(4, "grpc", Msg(&GRPC_ACTION)),
    ],
);

/// `ExecAction` (core/v1).
pub(super) static EXEC_ACTION: Message = msg("ExecAction", &[rep(1, "command", Str)]);

/// `HTTPGetAction` (core/v1).
pub(super) static HTTP_GET_ACTION: Message = msg(
    "HTTPGetAction",
    &[
        one(1, "path", Str),
        one(2, "port", IntOrString),
        one(3, "host", Str),
        one(4, "scheme", Str),
        rep(5, "httpHeaders", Msg(&HTTP_HEADER)),
    ],
);

/// `HTTPHeader` (core/v1).
pub(super) static HTTP_HEADER: Message = msg("HTTPHeader", &[one(1, "name", Str), one(2, "value", Str)]);

/// `TCPSocketAction` (core/v1).
pub(super) static TCP_SOCKET_ACTION: Message =
    msg("TCPSocketAction", &[one(1, "port", IntOrString), one(2, "host", Str)]);

/// `GRPCAction` (core/v1).
pub(super) static GRPC_ACTION: Message = msg("GRPCAction", &[one(1, "port", Int), ptr(2, "service", Str)]);

/// `Lifecycle` (core/v1).
pub(super) static LIFECYCLE: Message =
    msg("Lifecycle", &[ptr(1, "postStart", Msg(&LIFECYCLE_HANDLER)), ptr(2, "preStop", Msg(&LIFECYCLE_HANDLER))]);

/// `LifecycleHandler` (core/v1).
pub(super) static LIFECYCLE_HANDLER: Message = msg(
    "LifecycleHandler",
    &[
        ptr(1, "exec", Msg(&EXEC_ACTION)),
        ptr(2, "httpGet", Msg(&HTTP_GET_ACTION)),
        ptr(3, "tcpSocket", Msg(&TCP_SOCKET_ACTION)),
        ptr(4, "sleep", Msg(&SLEEP_ACTION)),
    ],
);

/// `SleepAction` (core/v1).
pub(super) static SLEEP_ACTION: Message = msg("SleepAction", &[one(1, "seconds", Int)]);

/// `SecurityContext` (core/v1).
pub(super) static SECURITY_CONTEXT: Message = msg(
    "SecurityContext",
    &[
        ptr(1, "capabilities", Msg(&CAPABILITIES)),
        ptr(2, "privileged", Bool),
        ptr(3, "seLinuxOptions", Msg(&SE_LINUX_OPTIONS)),
        ptr(10, "windowsOptions", Msg(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        ptr(4, "runAsUser", Int),
        ptr(8, "runAsGroup", Int),
        ptr(5, "runAsNonRoot", Bool),
        ptr(6, "readOnlyRootFilesystem", Bool),
        ptr(7, "allowPrivilegeEscalation", Bool),
        ptr(9, "procMount", Str),
        ptr(11, "seccompProfile", Msg(&SECCOMP_PROFILE)),
        ptr(12, "appArmorProfile", Msg(&APP_ARMOR_PROFILE)),
    ],
);

/// `Capabilities` (core/v1).
pub(super) static CAPABILITIES: Message = msg("Capabilities", &[rep(1, "add", Str), rep(2, "drop", Str)]);

/// `SELinuxOptions` (core/v1).
pub(super) static SE_LINUX_OPTIONS: Message =
    msg("SELinuxOptions", &[one(1, "user", Str), one(2, "role", Str), one(3, "type", Str), one(4, "level", Str)]);

/// `WindowsSecurityContextOptions` (core/v1).
pub(super) static WINDOWS_SECURITY_CONTEXT_OPTIONS: Message = msg(
    "WindowsSecurityContextOptions",
    &[
        ptr(1, "gmsaCredentialSpecName", Str),
        ptr(2, "gmsaCredentialSpec", Str),
        ptr(3, "runAsUserName", Str),
        ptr(4, "hostProcess", Bool),
    ],
);

/// `SeccompProfile` (core/v1).
pub(super) static SECCOMP_PROFILE: Message =
    msg("SeccompProfile", &[one(1, "type", Str), ptr(2, "localhostProfile", Str)]);

/// `AppArmorProfile` (core/v1).
pub(super) static APP_ARMOR_PROFILE: Message =
    msg("AppArmorProfile", &[one(1, "type", Str), ptr(2, "localhostProfile", Str)]);
