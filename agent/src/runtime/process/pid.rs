//! What the process runtime asks of the host about a process: is it still the one we
//! started (pid plus start time, from `/proc/<pid>/stat`), signal its process group, and
//! turn a wait status into a container exit code.
//!
//! Invariant: a signal goes to a process group only while its leader is alive and still
//! has the start time we recorded, or right after we reaped the leader ourselves (Linux
//! does not hand out a pid that is still some group's id, so `-pid` then names only the
//! leftovers of that same group).

use std::process::ExitStatus;

use super::record::ProcessId;

/// What `/proc/<pid>/stat` says of a process: its state letter and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub start_ticks: u64,
}

/// Parse a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and may
/// hold spaces or parentheses itself, so fields are counted after the last `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let rest = &line[line.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 was the state; the start time is field 22, 19 further on.
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_ticks })
}

/// The stat of `pid`, if such a process exists.
pub fn stat(pid: i32) -> Option<Stat> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().as_deref().and_then(parse_stat)
}

/// True while `process` runs: its pid exists, is not a zombie, and started when recorded.
pub fn is_alive(process: ProcessId) -> bool {
    stat(process.pid).is_some_and(|s| s.start_ticks == process.start_ticks && !matches!(s.state, 'Z' | 'X'))
}

/// Send `signal` to the process group led by `pid`; a group that is gone is not an error.
pub fn signal_group(pid: i32, signal: libc::c_int) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(-pid, signal) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pid, signal, error = %e, "cannot signal a container's process group");
        }
    }
}

/// Kill what is left of `process`'s group once its leader is gone. Skipped when the pid
/// now names a stranger: our group cannot exist then, as Linux does not hand out a pid
/// that is still a group's id, and `-pid` could be the stranger's group.
pub fn kill_leftovers(process: ProcessId) {
    match stat(process.pid) {
        Some(s) if s.start_ticks != process.start_ticks => {}
        _ => signal_group(process.pid, libc::SIGKILL),
    }
}

/// A container's exit code: the process's own, or 128 + n when signal n ended it.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 \
                    2490368 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat(line), Some(Stat { state: 'S', start_ticks: 987_654 }));
        assert_eq!(parse_stat("12 (sh) R 1 2"), None);
    }

    #[test]
    fn this_process_is_alive_under_its_own_start_time_only() {
        let pid = i32::try_from(std::process::id()).unwrap();
        let own = stat(pid).expect("our own /proc entry");
        assert!(is_alive(ProcessId { pid, start_ticks: own.start_ticks }));
        assert!(!is_alive(ProcessId { pid, start_ticks: own.start_ticks + 1 }));
    }

    #[test]
    fn a_signal_death_is_128_plus_the_signal() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGTERM)), 143);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGKILL)), 137);
    }
}
