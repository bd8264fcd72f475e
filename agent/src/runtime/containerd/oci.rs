//! The OCI runtime spec (runc's `config.json`) of a container, generated as JSON.
//!
//! Invariants:
//! - Pure: the same inputs give the same spec, so it is tested without a daemon.
//! - Every container gets new pid, ipc, uts and mount namespaces and joins its sandbox's
//!   network namespace by path: containers of one pod reach each other on localhost.
//! - Unprivileged containers get Docker's default capability set (none effective for a
//!   non-root user), masked and read-only `/proc` paths, a read-only `/sys` and the
//!   default device rules. Privileged ones get every capability, no masked paths, a
//!   writable `/sys` and every device cgroup permission.
//! - `resources` become cgroup limits: the CPU limit a CFS quota over a 100 ms period,
//!   the CPU request shares (1024 per CPU, at least 2, as the kubelet maps them), the
//!   memory limit a hard limit.

use k8s_openapi::serde_json::{json, Value};

use crate::runtime::{Mount, Resources, Security};

/// The CFS period the CPU quota is expressed over (the kubelet's default).
const CPU_PERIOD_US: u64 = 100_000;
/// Smallest CPU shares value the kernel accepts.
const MIN_SHARES: u64 = 2;
/// Docker's default capabilities.
const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];
/// Every capability Linux 5.9+ knows (privileged containers).
const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// What a process (a container's main one, or an exec) runs as and with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInput {
    pub args: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub terminal: bool,
    pub privileged: bool,
}

/// Everything a container's spec is made from.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub process: ProcessInput,
    pub hostname: &'a str,
    /// The sandbox's network namespace (`/var/run/netns/...`).
    pub netns_path: &'a str,
    pub cgroups_path: String,
    /// Volumes and the sandbox's `/etc/hosts` and `/etc/hostname`.
    pub mounts: &'a [Mount],
    pub resources: &'a Resources,
    pub security: &'a Security,
}

/// The OCI process object.
pub fn process(p: &ProcessInput) -> Value {
    let bounding: &[&str] = if p.privileged { ALL_CAPS } else { DEFAULT_CAPS };
    // A non-root user gets no effective capabilities (as Docker does), only the bound.
    let effective: &[&str] = if p.uid == 0 || p.privileged { bounding } else { &[] };
    json!({
        "terminal": p.terminal,
        "user": { "uid": p.uid, "gid": p.gid },
        "args": p.args,
        "env": p.env,
        "cwd": p.cwd,
        "capabilities": {
            "bounding": bounding,
            "effective": effective,
            "permitted": effective,
        },
        "noNewPrivileges": false,
    })
}

/// The whole runtime spec. See the module doc.
pub fn runtime_spec(input: &SpecInput) -> Value {
    let privileged = input.security.privileged;
    let (masked, readonly): (&[&str], &[&str]) = if privileged { (&[], &[]) } else { (MASKED_PATHS, READONLY_PATHS) };
    let devices = json!([{ "allow": privileged, "access": "rwm" }]);
    let mut resources = cgroup_resources(input.resources);
    resources["devices"] = devices;
    json!({
        "ociVersion": "1.0.2",
        "process": process(&input.process),
        "root": { "path": "rootfs", "readonly": input.security.read_only_root_filesystem },
        "hostname": input.hostname,
        "mounts": mounts(input.mounts, privileged),
        "linux": {
            "namespaces": [
                { "type": "pid" },
                { "type": "ipc" },
                { "type": "uts" },
                { "type": "mount" },
                { "type": "network", "path": input.netns_path },
            ],
            "resources": resources,
            "cgroupsPath": input.cgroups_path,
            "maskedPaths": masked,
            "readonlyPaths": readonly,
        },
    })
}

/// `linux.resources` without devices: CPU quota/shares and memory limit as asked.
pub fn cgroup_resources(r: &Resources) -> Value {
    let mut cpu = json!({});
    if let Some(millis) = r.cpu_millis {
        cpu["quota"] = json!((millis * CPU_PERIOD_US / 1000).max(1000));
        cpu["period"] = json!(CPU_PERIOD_US);
    }
    if let Some(millis) = r.cpu_request_millis.or(r.cpu_millis) {
        cpu["shares"] = json!((millis * 1024 / 1000).max(MIN_SHARES));
    }
    let mut resources = json!({ "cpu": cpu });
    if let Some(bytes) = r.memory_bytes {
        resources["memory"] = json!({ "limit": bytes });
    }
    resources
}

fn mounts(binds: &[Mount], privileged: bool) -> Value {
    let sys_mode = if privileged { "rw" } else { "ro" };
    let mut all = vec![
        json!({ "destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"] }),
        json!({ "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] }),
        json!({ "destination": "/dev/pts", "type": "devpts", "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] }),
        json!({ "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] }),
        json!({ "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"] }),
        json!({ "destination": "/sys", "type": "sysfs", "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", sys_mode] }),
        json!({ "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", sys_mode] }),
    ];
    for m in binds {
        let mode = if m.read_only { "ro" } else { "rw" };
        all.push(json!({
            "destination": m.container_path,
            "type": "bind",
            "source": m.host_path,
            "options": ["rbind", "rprivate", mode],
        }));
    }
    Value::Array(all)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn input<'a>(mounts: &'a [Mount], resources: &'a Resources, security: &'a Security) -> SpecInput<'a> {
        SpecInput {
            process: ProcessInput {
                args: vec!["/bin/sh".into()],
                env: vec!["A=1".into()],
                cwd: "/".into(),
                uid: security.run_as_user.unwrap_or(0) as u32,
                gid: 0,
                terminal: false,
                privileged: security.privileged,
            },
            hostname: "web-1",
            netns_path: "/var/run/netns/flotilla-s1",
            cgroups_path: "/flotilla/c1".into(),
            mounts,
            resources,
            security,
        }
    }

    #[test]
    fn the_network_namespace_is_the_sandboxs_and_the_others_are_new() {
        let spec = runtime_spec(&input(&[], &Resources::default(), &Security::default()));
        let namespaces = spec["linux"]["namespaces"].as_array().unwrap();
        assert_eq!(namespaces.len(), 5);
        let net = namespaces.iter().find(|n| n["type"] == "network").unwrap();
        assert_eq!(net["path"], "/var/run/netns/flotilla-s1");
        assert!(namespaces.iter().filter(|n| n["type"] != "network").all(|n| n.get("path").is_none()));
        assert_eq!(spec["hostname"], "web-1");
    }

    #[test]
    fn limits_become_cfs_quota_shares_and_a_memory_limit() {
        let r = Resources { cpu_millis: Some(500), memory_bytes: Some(64 << 20), cpu_request_millis: Some(250) };
        let spec = runtime_spec(&input(&[], &r, &Security::default()));
        let res = &spec["linux"]["resources"];
        assert_eq!(res["cpu"]["quota"], 50_000);
        assert_eq!(res["cpu"]["period"], 100_000);
        assert_eq!(res["cpu"]["shares"], 256);
        assert_eq!(res["memory"]["limit"], 64u64 << 20);
        let none = cgroup_resources(&Resources::default());
        assert_eq!(none, json!({ "cpu": {} }));
    }

    #[test]
    fn binds_keep_their_mode_and_the_root_can_be_read_only() {
        let binds = [
            Mount { host_path: PathBuf::from("/data/a"), container_path: "/a".into(), read_only: true },
            Mount { host_path: PathBuf::from("/data/b"), container_path: "/b".into(), read_only: false },
        ];
        let sec = Security { read_only_root_filesystem: true, ..Security::default() };
        let spec = runtime_spec(&input(&binds, &Resources::default(), &sec));
        assert_eq!(spec["root"]["readonly"], true);
        let mounts = spec["mounts"].as_array().unwrap();
        let a = mounts.iter().find(|m| m["destination"] == "/a").unwrap();
        assert_eq!(a["source"], "/data/a");
        assert!(a["options"].as_array().unwrap().contains(&json!("ro")));
        let b = mounts.iter().find(|m| m["destination"] == "/b").unwrap();
        assert!(b["options"].as_array().unwrap().contains(&json!("rw")));
    }

    #[test]
    fn privileged_gets_every_capability_and_nothing_masked() {
        let plain = runtime_spec(&input(&[], &Resources::default(), &Security::default()));
        let caps = plain["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert!(!caps.contains(&json!("CAP_SYS_ADMIN")));
        assert!(!plain["linux"]["maskedPaths"].as_array().unwrap().is_empty());
        assert_eq!(plain["linux"]["resources"]["devices"][0]["allow"], false);

        let sec = Security { privileged: true, ..Security::default() };
        let spec = runtime_spec(&input(&[], &Resources::default(), &sec));
        let caps = spec["process"]["capabilities"]["effective"].as_array().unwrap();
        assert!(caps.contains(&json!("CAP_SYS_ADMIN")));
        assert!(spec["linux"]["maskedPaths"].as_array().unwrap().is_empty());
        assert_eq!(spec["linux"]["resources"]["devices"][0]["allow"], true);
    }

    #[test]
    fn a_non_root_user_has_no_effective_capabilities() {
        let sec = Security { run_as_user: Some(1000), ..Security::default() };
        let spec = runtime_spec(&input(&[], &Resources::default(), &sec));
        assert_eq!(spec["process"]["user"]["uid"], 1000);
        assert_eq!(spec["process"]["capabilities"]["effective"], json!([]));
        assert!(!spec["process"]["capabilities"]["bounding"].as_array().unwrap().is_empty());
    }
}
