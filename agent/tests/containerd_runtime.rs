//! The containerd runtime against a real containerd: every conformance check (see
//! `conformance/mod.rs`), each as its own test in its own pod, plus containerd-specific
//! checks (adoption over the same state dir, the pod network, image names).
//!
//! Needs root, containerd and runc. The daemon is a private one started (or reused) by
//! `scripts/start-containerd` under [`CONTAINERD_DIR`], never the system's; the test image
//! is imported into it with `scripts/make-test-image --containerd` (a no-op when present).
//! Without containerd the tests fail and say so, unless `FLOTILLA_SKIP_CONTAINERD=1`.
//!
//! Each test has its own state dir (`tests/<pod uid>` under [`CONTAINERD_DIR`]) and pod;
//! all share the CNI bridge and address allocations. A [`PodGuard`] stops and removes the
//! pod's containers and sandboxes (CNI DEL, netns) and the state dir when the test ends,
//! also when it fails. Leftovers of killed runs carry pod uids starting with `conf-`.

mod conformance;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use conformance::Subject;
use flotilla_agent::runtime::containerd::{ContainerdOptions, ContainerdRuntime};
use flotilla_agent::runtime::Runtime;

/// Where the private test daemon lives (the script's default).
const CONTAINERD_DIR: &str = "/var/tmp/flotilla-containerd";
const TEST_IMAGE: &str = "flotilla/busybox:latest";

fn script(name: &str) -> String {
    format!("{}/../scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Start the daemon and import the image, once per test process; the socket, or the
/// reason there is none.
fn daemon() -> Result<PathBuf, String> {
    static SOCKET: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    SOCKET
        .get_or_init(|| {
            let out = Command::new(script("start-containerd")).arg(CONTAINERD_DIR).output();
            let out = out.map_err(|e| format!("running scripts/start-containerd: {e}"))?;
            if !out.status.success() {
                return Err(format!("scripts/start-containerd failed: {}", String::from_utf8_lossy(&out.stderr)));
            }
            let socket = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let status = Command::new(script("make-test-image")).args(["--containerd", &socket, TEST_IMAGE]).status();
            let status = status.map_err(|e| format!("running scripts/make-test-image: {e}"))?;
            if !status.success() {
                return Err(format!("scripts/make-test-image failed: {status}"));
            }
            Ok(PathBuf::from(socket))
        })
        .clone()
}

fn options(uid: &str) -> Result<ContainerdOptions, String> {
    Ok(ContainerdOptions {
        socket: daemon()?,
        state_dir: PathBuf::from(CONTAINERD_DIR).join("tests").join(uid),
        ipam_dir: Some(PathBuf::from(CONTAINERD_DIR).join("tests-ipam")),
        ..ContainerdOptions::default()
    })
}

/// The runtime under test for pod `uid`, or `None` when there is no containerd and
/// skipping is allowed.
async fn subject(uid: &str) -> Option<Subject> {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("flotilla_agent=info").try_init();
    let made = match options(uid) {
        Ok(options) => ContainerdRuntime::new(options).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let runtime = match made {
        Ok(rt) => rt,
        Err(e) if std::env::var("FLOTILLA_SKIP_CONTAINERD").as_deref() == Ok("1") => {
            eprintln!("skipped: no containerd ({e}) and FLOTILLA_SKIP_CONTAINERD=1");
            return None;
        }
        Err(e) => panic!("no containerd ({e}); install containerd or set FLOTILLA_SKIP_CONTAINERD=1 to skip"),
    };
    Some(Subject { runtime: Arc::new(runtime), image: TEST_IMAGE.to_string(), exit_reasons: true })
}

/// Removes pod `uid` (containers, sandboxes, state dir) when dropped, whatever the test's
/// outcome: on a thread of its own, as the test's Tokio runtime may be gone.
struct PodGuard {
    uid: String,
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        let uid = self.uid.clone();
        let cleaned = std::thread::spawn(move || {
            let tokio = tokio::runtime::Runtime::new().expect("a Tokio runtime");
            tokio.block_on(async {
                let Ok(options) = options(&uid) else { return };
                let state_dir = options.state_dir.clone();
                if let Ok(rt) = ContainerdRuntime::new(options).await {
                    remove_pod(&rt, &uid).await;
                }
                let _ = std::fs::remove_dir_all(state_dir);
            });
        });
        let _ = cleaned.join();
    }
}

/// Best-effort removal of everything of pod `uid`.
async fn remove_pod(rt: &ContainerdRuntime, uid: &str) {
    for c in rt.list_containers(Some(uid)).await.unwrap_or_default() {
        let _ = rt.stop_container(&c.id, Duration::ZERO).await;
        let _ = rt.remove_container(&c.id).await;
    }
    for s in rt.list_sandboxes(Some(uid)).await.unwrap_or_default() {
        let _ = rt.remove_sandbox(&s.id).await;
    }
}

/// A test running conformance check `$check` in a fresh pod, then cleaning it up.
macro_rules! conformance_test {
    ($($name:ident => $check:path;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let pod = PodGuard { uid: conformance::unique_uid(stringify!($name)) };
            let Some(s) = subject(&pod.uid).await else { return };
            $check(&s, &pod.uid).await;
            conformance::cleanup(&*s.runtime, &pod.uid).await;
        }
    )*};
}

conformance::every_check!(conformance_test);

#[tokio::test]
async fn a_new_runtime_over_the_same_state_adopts_running_containers() {
    let pod = PodGuard { uid: conformance::unique_uid("adoption") };
    let Some(s) = subject(&pod.uid).await else { return };
    let uid = pod.uid.clone();
    let reopen = || async move {
        let rt = ContainerdRuntime::new(options(&uid).unwrap()).await.expect("a second runtime");
        Arc::new(rt) as Arc<dyn Runtime>
    };
    let (second, id) = conformance::adoption(&s, &pod.uid, reopen).await;
    // The adopter can stop what the first instance started, and sees the real exit code.
    second.stop_container(&id, Duration::ZERO).await.unwrap();
    assert_eq!(conformance::exited(&*s.runtime, &id).await.0, 137);
    conformance::cleanup(&*second, &pod.uid).await;
}

#[tokio::test]
async fn a_pod_gets_an_address_of_the_pod_subnet_in_its_own_network_namespace() {
    let pod = PodGuard { uid: conformance::unique_uid("layout") };
    let Some(s) = subject(&pod.uid).await else { return };
    let rt = &*s.runtime;
    let sandbox = conformance::sandbox(rt, &pod.uid).await;
    let ip = sandbox.ip.clone().expect("a pod IP");
    assert!(ip.starts_with("10.245."), "from the default subnet 10.245.0.0/16: {ip}");
    let netns = format!("/var/run/netns/flotilla-{}", sandbox.id);
    assert!(std::path::Path::new(&netns).exists(), "the sandbox's network namespace {netns}");
    let script = "hostname; cat /etc/hosts; ip -4 addr show eth0 2>/dev/null || ifconfig eth0";
    let id = conformance::run(rt, &conformance::shell(&s, &pod.uid, "app", script)).await;
    assert_eq!(conformance::exited(rt, &id).await.0, 0);
    let log = conformance::log_contains(rt, &id, "pod\n").await;
    assert!(log.contains(&ip), "the app container is in the sandbox's network namespace: {log}");
    conformance::cleanup(rt, &pod.uid).await;
    assert!(!std::path::Path::new(&netns).exists(), "the network namespace is removed with the sandbox");
}

#[tokio::test]
async fn images_are_found_by_short_and_normalized_names() {
    let pod = PodGuard { uid: conformance::unique_uid("images") };
    let Some(s) = subject(&pod.uid).await else { return };
    let rt = &*s.runtime;
    let full = rt.image_id("docker.io/flotilla/busybox:latest").await.unwrap().expect("imported under docker.io/");
    assert_eq!(rt.image_id("flotilla/busybox").await.unwrap().as_deref(), Some(full.as_str()));
    assert!(full.starts_with("sha256:"), "{full}");
    assert_eq!(rt.image_id("flotilla/no-such-image:1").await.unwrap(), None);
}
