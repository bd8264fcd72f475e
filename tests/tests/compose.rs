//! The three-machine install as Docker containers: `deploy/compose/build-image` makes an image
//! of the binary under test, `deploy/compose/docker-compose.yml` runs three replicas and two
//! process-runtime agents on a private network, and the real kubectl and `flotilla status`
//! drive it from the host (which reaches the network's addresses directly) through a leader
//! killed with `docker kill` and a follower cut off the network and connected again.
//!
//! Each run has its own compose project, image tag and /24, so it never touches a cluster a
//! person started from the same file; everything goes (`down -v`, `rmi`) when the test ends,
//! however it ends. Needs a Docker daemon: without one the test fails and says so, unless
//! `FLOTILLA_SKIP_DOCKER=1` (as the docker runtime's tests); and `docker compose` or
//! `docker-compose` (scripts/test.sh installs Debian's docker-compose).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use flotilla_tests::kube::{jsonpath, running_pods, Kubectl};
use flotilla_tests::{flotilla_bin, wait_for};

/// How long the cluster may take for each step: start, elect, schedule, fail over, catch up.
const STEP: Duration = Duration::from_secs(60);

const REPLICAS: [&str; 3] = ["n1", "n2", "n3"];
const AGENTS: [&str; 2] = ["agent-1", "agent-2"];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/compose")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run `cmd`, which must succeed; its stdout.
fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// True when a Docker daemon answers; false (skip) when none does and `FLOTILLA_SKIP_DOCKER=1`.
fn docker_answers() -> bool {
    let answers = Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]).output();
    match answers {
        Ok(out) if out.status.success() => true,
        _ if std::env::var("FLOTILLA_SKIP_DOCKER").as_deref() == Ok("1") => {
            eprintln!("skipped: no Docker daemon and FLOTILLA_SKIP_DOCKER=1");
            false
        }
        Ok(out) => panic!(
            "no Docker daemon answers ({}); start one or set FLOTILLA_SKIP_DOCKER=1 to skip",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("docker is not installed ({e}); install it or set FLOTILLA_SKIP_DOCKER=1 to skip"),
    }
}

/// `docker compose` (v2) when the plugin is there, else Debian's `docker-compose` (v1).
fn compose_command() -> Vec<&'static str> {
    let runs = |argv: &[&str]| Command::new(argv[0]).args(&argv[1..]).output().is_ok_and(|o| o.status.success());
    if runs(&["docker", "compose", "version"]) {
        vec!["docker", "compose"]
    } else if runs(&["docker-compose", "version"]) {
        vec!["docker-compose"]
    } else {
        panic!(
            "neither `docker compose` nor `docker-compose` runs: apt-get install docker-compose (scripts/test.sh does)"
        )
    }
}

/// `a.b.c.d/len` (or a bare address: /32) as (network, prefix length).
fn parse_cidr(cidr: &str) -> Option<(u32, u32)> {
    let (addr, len) = cidr.split_once('/').unwrap_or((cidr, "32"));
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((u32::from(addr), len))
}

fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    let len = a.1.min(b.1);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    a.0 & mask == b.0 & mask
}

/// The first three octets of a /24 in 172.29.1-254.0 that no Docker network and no route of
/// this host uses (172.29.0.0/24, the compose file's default, is left to people).
fn free_net() -> String {
    let mut used: Vec<(u32, u32)> = Vec::new();
    let ids = ok(Command::new("docker").args(["network", "ls", "-q"]));
    let ids: Vec<&str> = ids.split_whitespace().collect();
    let subnets = ok(Command::new("docker")
        .args(["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"])
        .args(&ids));
    used.extend(subnets.split_whitespace().filter_map(parse_cidr));
    if let Ok(routes) = Command::new("ip").args(["-4", "route", "show"]).output() {
        used.extend(stdout(&routes).lines().filter_map(|l| l.split_whitespace().next()).filter_map(parse_cidr));
    }
    // Start where this process's id points, so two runs at once are unlikely to pick the same.
    let start = std::process::id() % 254;
    (0..254)
        .map(|i| (start + i) % 254 + 1)
        .map(|third| format!("172.29.{third}"))
        .find(|net| !used.iter().any(|u| overlaps(*u, parse_cidr(&format!("{net}.0/24")).expect("a CIDR"))))
        .expect("a free /24 in 172.29.0.0/16")
}

/// One compose project of `deploy/compose/docker-compose.yml` with its own image and network;
/// brought down with its volumes, and its image removed, on drop.
struct Cluster {
    compose: Vec<&'static str>,
    project: String,
    image: String,
    net: String,
}

impl Cluster {
    fn start() -> Self {
        let unique = format!("{}-{}", std::process::id(), std::time::UNIX_EPOCH.elapsed().expect("clock").as_millis());
        let c = Self {
            compose: compose_command(),
            project: format!("flotilla-e2e-{unique}"),
            image: format!("flotilla/flotilla:e2e-{unique}"),
            net: free_net(),
        };
        // From here on a failure drops `c`, which removes whatever was made.
        ok(Command::new(deploy_dir().join("build-image")).args(["--tag", &c.image]).arg(flotilla_bin()));
        ok(&mut c.command(&["up", "-d"]));
        c
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.compose[0]);
        cmd.args(&self.compose[1..])
            .args(["-p", &self.project, "-f"])
            .arg(deploy_dir().join("docker-compose.yml"))
            .args(args)
            .env("FLOTILLA_IMAGE", &self.image)
            .env("FLOTILLA_NET", &self.net);
        cmd
    }

    /// The fixed address of a service (the compose file's plan: n1-n3 .11-.13, agents .21-.22).
    fn ip(&self, service: &str) -> String {
        let host = match service {
            "n1" => 11,
            "n2" => 12,
            "n3" => 13,
            "agent-1" => 21,
            "agent-2" => 22,
            other => panic!("no service {other}"),
        };
        format!("{}.{host}", self.net)
    }

    fn api(&self, replica: &str) -> String {
        format!("http://{}:6443", self.ip(replica))
    }

    fn endpoints(&self) -> String {
        REPLICAS.iter().map(|r| format!("http://{}:2379", self.ip(r))).collect::<Vec<_>>().join(",")
    }

    fn container(&self, service: &str) -> String {
        let id = ok(&mut self.command(&["ps", "-q", service])).trim().to_string();
        assert!(!id.is_empty(), "no container for {service}");
        id
    }

    /// `flotilla status -o json` of the replicas: its exit code (2: no leader) and report, or
    /// `None` while it prints no report.
    fn status(&self) -> Option<(i32, serde_json::Value)> {
        flotilla_tests::flotilla_status(&self.endpoints())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(out) = self.command(&["logs", "--no-color", "--tail", "40"]).output() {
                eprintln!("--- compose logs ---\n{}", stdout(&out));
            }
        }
        let _ = self.command(&["down", "-v", "--remove-orphans", "-t", "10"]).output();
        let _ = Command::new("docker").args(["rmi", "-f", &self.image]).output();
    }
}

fn members(report: &serde_json::Value) -> &Vec<serde_json::Value> {
    report["members"].as_array().expect("members in the status report")
}

fn member<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    members(report).iter().find(|m| m["name"] == name).unwrap_or_else(|| panic!("{name} in {report}"))
}

/// A report with a leader in which every replica answers with no lag.
fn all_caught_up(c: &Cluster) -> Option<serde_json::Value> {
    let (code, report) = c.status()?;
    let ms = members(&report);
    let healthy = code == 0 && ms.len() == 3 && ms.iter().all(|m| m["reachable"] == true && m["lag"] == 0);
    healthy.then_some(report)
}

/// `kubectl create configmap <name>` through `k`, retried until it is there (a retry after a
/// create that succeeded but timed out finds it already exists).
fn create_configmap(k: &Kubectl, name: &str) {
    wait_for(STEP, &format!("configmap {name} created"), || {
        let out = k.run(&["create", "configmap", name, &format!("--from-literal=written={name}")], None);
        (out.status.success() || String::from_utf8_lossy(&out.stderr).contains("AlreadyExists")).then_some(())
    });
}

fn read_configmap(k: &Kubectl, name: &str) -> String {
    k.ok(&["get", "configmap", name, "-o", "jsonpath={.data.written}"])
}

#[test]
fn three_replicas_and_two_agents_in_containers_survive_a_leader_kill_and_a_cut() {
    if !docker_answers() {
        return;
    }
    let c = Cluster::start();

    // The cluster forms: a leader, every replica answering, both agents' Nodes Ready and
    // schedulable (the node lifecycle controller lifts the not-ready taint a moment after
    // Ready; until then the scheduler would place every pod on the other agent).
    wait_for(STEP, "three replicas with a leader", || all_caught_up(&c));
    let mut k = Kubectl::new(&c.api("n2"));
    wait_for(STEP, "both agents Ready and untainted", || {
        let out = k.run(
            &[
                "get",
                "nodes",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status}\
                 {.spec.taints[*].key} {end}",
            ],
            None,
        );
        let ready: BTreeSet<String> =
            stdout(&out).split_whitespace().filter_map(|n| n.strip_suffix("=True")).map(String::from).collect();
        (ready == AGENTS.iter().map(|a| a.to_string()).collect()).then_some(())
    });
    for agent in AGENTS {
        let ip = jsonpath(&k, "default", &["node", agent], "{.status.addresses[?(@.type==\"InternalIP\")].address}");
        assert_eq!(ip, c.ip(agent), "{agent}'s InternalIP is its container's address");
    }

    // A deployment runs on both agent containers, as processes of those containers.
    k.ok(&[
        "create",
        "deployment",
        "web",
        "--image=flotilla/busybox:latest",
        "--replicas=2",
        "--",
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done",
    ]);
    let pods = running_pods(&k, "default", "web", 2);
    let placed =
        jsonpath(&k, "default", &["pods", "-l", "app=web"], "{range .items[*]}{.spec.nodeName}={.status.podIP} {end}");
    let placed: BTreeSet<&str> = placed.split_whitespace().collect();
    let expected: BTreeSet<String> = AGENTS.iter().map(|a| format!("{a}={}", c.ip(a))).collect();
    assert_eq!(placed, expected.iter().map(String::as_str).collect(), "one pod per agent, with the agent's address");
    // exec and logs go from a replica's container to the agent's over the private network.
    let node = jsonpath(&k, "default", &["pod", &pods[0]], "{.spec.nodeName}");
    assert_eq!(k.ok(&["exec", &pods[0], "--", "hostname"]).trim(), node, "the pod runs in its agent's container");
    wait_for(STEP, "the pod's log", || k.ok(&["logs", &pods[0], "--tail=1"]).starts_with("tick ").then_some(()));

    // The leader's container is killed: the survivors elect another and keep serving.
    let report = wait_for(STEP, "an agreed leader", || all_caught_up(&c));
    let leader = report["leader"].as_str().expect("a leader").to_string();
    let survivors: Vec<&str> = REPLICAS.iter().copied().filter(|r| *r != leader).collect();
    let term = report["term"].as_u64().expect("a term");
    ok(Command::new("docker").args(["kill", &c.container(&leader)]));
    k.set_server(&c.api(survivors[0]));
    create_configmap(&k, "after-kill");
    k.set_server(&c.api(survivors[1]));
    assert_eq!(read_configmap(&k, "after-kill"), "after-kill");
    k.ok(&["scale", "deployment", "web", "--replicas=3"]);
    running_pods(&k, "default", "web", 3);
    let report = wait_for(STEP, "a new leader with the old one down", || {
        let (code, report) = c.status()?;
        (code == 0 && report["leader"] != leader.as_str()).then_some(report)
    });
    assert!(report["term"].as_u64() > Some(term), "a later term: {report}");
    assert_eq!(member(&report, &leader)["reachable"], false, "{report}");

    // Started again, it rejoins from its volume and catches up.
    ok(Command::new("docker").args(["start", &c.container(&leader)]));
    wait_for(STEP, "the restarted replica caught up", || all_caught_up(&c));
    k.set_server(&c.api(&leader));
    assert_eq!(read_configmap(&k, "after-kill"), "after-kill");

    // A follower is cut off the network: the other two keep serving reads and writes.
    let report = wait_for(STEP, "an agreed leader", || all_caught_up(&c));
    let leader = report["leader"].as_str().expect("a leader").to_string();
    let cut = REPLICAS.iter().copied().find(|r| *r != leader).expect("a follower");
    let other = REPLICAS.iter().copied().find(|r| *r != leader && *r != cut).expect("another follower");
    let cut_id = c.container(cut);
    let network = ok(Command::new("docker").args([
        "inspect",
        "-f",
        "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}",
        &cut_id,
    ]));
    let network = network.trim();
    ok(Command::new("docker").args(["network", "disconnect", network, &cut_id]));
    k.set_server(&c.api(other));
    create_configmap(&k, "during-cut");
    k.set_server(&c.api(&leader));
    assert_eq!(read_configmap(&k, "during-cut"), "during-cut");
    let (applied, report) = wait_for(STEP, "a report without the cut follower", || {
        let (code, report) = c.status()?;
        let applied = member(&report, &leader)["applied_index"].as_u64()?;
        (code == 0 && member(&report, cut)["reachable"] == false).then_some((applied, report))
    });
    assert_eq!(report["leader"], leader.as_str(), "a follower's cut does not move the leader: {report}");

    // Connected again at its address, it catches up with everything written meanwhile.
    ok(Command::new("docker").args(["network", "connect", "--ip", &c.ip(cut), network, &cut_id]));
    wait_for(STEP, "the reconnected follower caught up", || {
        let report = all_caught_up(&c)?;
        (member(&report, cut)["applied_index"].as_u64()? >= applied).then_some(())
    });
    k.set_server(&c.api(cut));
    assert_eq!(read_configmap(&k, "during-cut"), "during-cut");
    assert_eq!(k.ok(&["get", "deployment", "web", "-o", "jsonpath={.spec.replicas}"]), "3");
}
