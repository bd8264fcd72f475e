//! What a nemesis can do: the kinds a run enables and the concrete faults a schedule holds.

use std::fmt;
use std::str::FromStr;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::partition::Partition;
use crate::cluster::name;

/// A family of faults, as enabled on the command line (`partition,kill,pause,clock,member`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Partition,
    Kill,
    Pause,
    Clock,
    Member,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Partition, Kind::Kill, Kind::Pause, Kind::Clock, Kind::Member];

    /// Parse a comma-separated list; `all` enables every kind.
    pub fn parse_list(s: &str) -> anyhow::Result<Vec<Kind>> {
        let mut kinds = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                kinds.extend(Kind::ALL);
            } else {
                kinds.push(part.parse()?);
            }
        }
        kinds.sort();
        kinds.dedup();
        Ok(kinds)
    }
}

impl FromStr for Kind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Kind> {
        Ok(match s {
            "partition" => Kind::Partition,
            "kill" => Kind::Kill,
            "pause" => Kind::Pause,
            "clock" => Kind::Clock,
            "member" | "membership" => Kind::Member,
            _ => bail!("unknown nemesis {s:?} (partition, kill, pause, clock, member, all)"),
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Kind::Partition => "partition",
            Kind::Kill => "kill",
            Kind::Pause => "pause",
            Kind::Clock => "clock",
            Kind::Member => "member",
        };
        f.write_str(s)
    }
}

/// Which nodes a process fault hits; the leader is resolved at injection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    One(usize),
    /// A minority of the nodes (fewer than half), so a quorum survives.
    Minority(Vec<usize>),
    Leader,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::One(i) => f.write_str(&name(*i)),
            Target::Minority(v) => write!(f, "minority {}", v.iter().map(|&i| name(i)).collect::<Vec<_>>().join(",")),
            Target::Leader => f.write_str("the leader"),
        }
    }
}

/// One fault of a schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    Partition(Partition),
    /// kill -9, restarted at heal.
    Kill(Target),
    /// SIGSTOP, SIGCONT at heal.
    Pause(Target),
    /// Restart the node with its clock shifted by `offset_s` seconds; back on the real
    /// clock (another restart) at heal.
    Clock {
        node: usize,
        offset_s: i64,
    },
    /// Remove the member; at heal, add it back as a learner with an empty data dir and
    /// promote it once it has caught up.
    Member(usize),
}

impl Fault {
    pub fn kind(&self) -> Kind {
        match self {
            Fault::Partition(_) => Kind::Partition,
            Fault::Kill(_) => Kind::Kill,
            Fault::Pause(_) => Kind::Pause,
            Fault::Clock { .. } => Kind::Clock,
            Fault::Member(_) => Kind::Member,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition(p) => f.write_str(&p.describe()),
            Fault::Kill(t) => write!(f, "kill -9 {t}"),
            Fault::Pause(t) => write!(f, "pause {t}"),
            Fault::Clock { node, offset_s } => write!(f, "skew {} clock {offset_s:+}s", name(*node)),
            Fault::Member(i) => write!(f, "remove member {} and re-add as learner", name(*i)),
        }
    }
}
