//! What the agent tells the control plane about its machine: capacity, free memory and
//! disk, identity (machine id, boot id, kernel, OS). Real hosts read `/proc`, `/etc` and
//! `statvfs`; simulated hosts report configured numbers.
//!
//! Invariant: sampling never fails — a fact that cannot be read is reported as empty or
//! zero (and logged), so a node always registers.

use std::path::{Path, PathBuf};

/// Which machine the facts come from.
#[derive(Debug, Clone)]
pub enum Host {
    /// This machine; ephemeral storage is the file system holding `data_dir`.
    Real { data_dir: PathBuf },
    /// A made-up machine (simulated nodes).
    Simulated(SimulatedHost),
}

/// The capacity a simulated node reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimulatedHost {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub storage_bytes: u64,
}

impl Default for SimulatedHost {
    /// A modest worker: 4 CPUs, 16 GiB of memory, 100 GiB of disk.
    fn default() -> Self {
        Self { cpu_millis: 4000, memory_bytes: 16 << 30, storage_bytes: 100 << 30 }
    }
}

/// Resources, sampled on every status tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub memory_available_bytes: u64,
    pub storage_bytes: u64,
    pub storage_available_bytes: u64,
}

/// Who the machine is, read once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    pub machine_id: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
}

impl Host {
    /// The data directory of a real node.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        match self {
            Host::Real { data_dir } => Some(data_dir),
            Host::Simulated(_) => None,
        }
    }

    pub fn sample(&self) -> Sample {
        match self {
            Host::Simulated(s) => Sample {
                cpu_millis: s.cpu_millis,
                memory_bytes: s.memory_bytes,
                memory_available_bytes: s.memory_bytes,
                storage_bytes: s.storage_bytes,
                storage_available_bytes: s.storage_bytes,
            },
            Host::Real { data_dir } => {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
                let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
                let (storage_bytes, storage_available_bytes) = statvfs(data_dir);
                Sample {
                    cpu_millis: cpus * 1000,
                    memory_bytes: meminfo_bytes(&meminfo, "MemTotal"),
                    memory_available_bytes: meminfo_bytes(&meminfo, "MemAvailable"),
                    storage_bytes,
                    storage_available_bytes,
                }
            }
        }
    }

    pub fn identity(&self) -> Identity {
        match self {
            Host::Simulated(_) => Identity { os_image: "flotilla simulated node".into(), ..Identity::default() },
            Host::Real { .. } => Identity {
                machine_id: read_trimmed("/etc/machine-id"),
                boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
                kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
                os_image: os_image(&std::fs::read_to_string("/etc/os-release").unwrap_or_default()),
            },
        }
    }
}

/// The machine's host name, if it has a usable one.
pub fn hostname() -> Option<String> {
    let name = read_trimmed("/proc/sys/kernel/hostname");
    (!name.is_empty()).then(|| name.to_lowercase())
}

/// The address this machine would use to reach other machines (the source address of a
/// route to a private network; nothing is sent), else loopback.
pub fn primary_address() -> std::net::IpAddr {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect("10.255.255.254:9").map(|()| s));
    let local = probe.and_then(|s| s.local_addr()).map(|a| a.ip());
    local.ok().filter(|ip| !ip.is_unspecified()).unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// A `/proc/meminfo` field in bytes (the file gives kB).
fn meminfo_bytes(meminfo: &str, field: &str) -> u64 {
    let line = meminfo.lines().find(|l| l.split(':').next() == Some(field));
    let kib = line.and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok());
    kib.unwrap_or(0) * 1024
}

fn os_image(os_release: &str) -> String {
    let pretty = os_release.lines().find_map(|l| l.strip_prefix("PRETTY_NAME="));
    pretty.map(|v| v.trim_matches('"').to_string()).unwrap_or_else(|| "Linux".into())
}

/// Total and available bytes of the file system holding `path` (zeros if unreadable).
fn statvfs(path: &Path) -> (u64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return (0, 0) };
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` a properly sized,
    // writable statvfs struct that outlives the call.
    let (rc, stat) = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c_path.as_ptr(), &mut stat), stat)
    };
    if rc != 0 {
        tracing::warn!(path = %path.display(), "statvfs failed; reporting no ephemeral storage");
        return (0, 0);
    }
    // The field types differ between platforms (u32 on some 32-bit ones).
    #[allow(clippy::unnecessary_cast)]
    let (block, blocks, available) = (stat.f_frsize as u64, stat.f_blocks as u64, stat.f_bavail as u64);
    (blocks * block, available * block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_os_release_are_parsed() {
        let meminfo = "MemTotal:       16314380 kB\nMemFree:  100 kB\nMemAvailable:   8000000 kB\n";
        assert_eq!(meminfo_bytes(meminfo, "MemTotal"), 16314380 * 1024);
        assert_eq!(meminfo_bytes(meminfo, "MemAvailable"), 8000000 * 1024);
        assert_eq!(meminfo_bytes(meminfo, "Missing"), 0);
        assert_eq!(
            os_image("NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
    }

    #[test]
    fn the_real_host_reports_nonzero_capacity() {
        let dir = std::env::temp_dir();
        let sample = Host::Real { data_dir: dir }.sample();
        assert!(sample.cpu_millis >= 1000);
        assert!(sample.memory_bytes > 0 && sample.memory_available_bytes <= sample.memory_bytes);
        assert!(sample.storage_bytes > 0 && sample.storage_available_bytes <= sample.storage_bytes);
    }
}
