//! The Docker runtime against the local daemon: every conformance check (see
//! `conformance/mod.rs`), each as its own test in its own pod, plus Docker's own layout
//! (pod network, hostname).
//!
//! Needs a Docker daemon (`DOCKER_HOST` or the default socket). Without one the tests fail
//! and say so, unless `FLOTILLA_SKIP_DOCKER=1`. The test image is built on first use with
//! `scripts/make-test-image` (a no-op when present). Every test's containers carry its
//! unique pod uid and are removed at its end, also when it fails ([`PodGuard`]); only the
//! runtime's shared network (`flotilla`) stays.

mod conformance;

use std::process::Command;
use std::sync::{Arc, OnceLock};

use conformance::Subject;
use flotilla_agent::runtime::docker::{DockerOptions, DockerRuntime, TEST_IMAGE};
use flotilla_agent::runtime::{labels, Runtime};

/// Build the test image once per test process.
fn ensure_test_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/make-test-image");
        let status = Command::new(script).arg(TEST_IMAGE).status().expect("running scripts/make-test-image");
        assert!(status.success(), "scripts/make-test-image failed: {status}");
    });
}

/// The runtime under test, or `None` when there is no daemon and skipping is allowed.
async fn subject() -> Option<Subject> {
    let runtime = match DockerRuntime::connect(DockerOptions::default()).await {
        Ok(rt) => rt,
        Err(e) if std::env::var("FLOTILLA_SKIP_DOCKER").as_deref() == Ok("1") => {
            eprintln!("skipped: no Docker daemon ({e}) and FLOTILLA_SKIP_DOCKER=1");
            return None;
        }
        Err(e) => panic!("no Docker daemon answers ({e}); start one or set FLOTILLA_SKIP_DOCKER=1 to skip"),
    };
    ensure_test_image();
    Some(Subject { runtime: Arc::new(runtime), image: TEST_IMAGE.to_string(), exit_reasons: true })
}

/// Removes every container of its pod when dropped, whatever the test's outcome.
struct PodGuard {
    uid: String,
}

impl Drop for PodGuard {
    fn drop(&mut self) {
        let filter = format!("label={}={}", labels::POD_UID, self.uid);
        let Ok(listed) = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output() else { return };
        let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout).split_whitespace().map(String::from).collect();
        if !ids.is_empty() {
            let _ = Command::new("docker").args(["rm", "-f", "-v"]).args(&ids).output();
        }
    }
}

/// A test running conformance check `$check` in a fresh pod, then cleaning it up.
macro_rules! conformance_test {
    ($($name:ident => $check:path;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let Some(s) = subject().await else { return };
            let pod = PodGuard { uid: conformance::unique_uid(stringify!($name)) };
            $check(&s, &pod.uid).await;
            conformance::cleanup(&*s.runtime, &pod.uid).await;
        }
    )*};
}

conformance::every_check!(conformance_test);

#[tokio::test]
async fn a_new_runtime_over_the_same_daemon_adopts_running_containers() {
    let Some(s) = subject().await else { return };
    let pod = PodGuard { uid: conformance::unique_uid("adoption") };
    let reopen = || async {
        let rt = DockerRuntime::connect(DockerOptions::default()).await.expect("second connection");
        Arc::new(rt) as Arc<dyn Runtime>
    };
    let (second, id) = conformance::adoption(&s, &pod.uid, reopen).await;
    // The adopter can stop what the first instance started, and sees the real exit code.
    second.stop_container(&id, std::time::Duration::ZERO).await.unwrap();
    assert_eq!(conformance::exited(&*s.runtime, &id).await.0, 137);
    conformance::cleanup(&*second, &pod.uid).await;
}

#[tokio::test]
async fn a_pod_lives_on_the_flotilla_network_with_its_hostname() {
    let Some(s) = subject().await else { return };
    let pod = PodGuard { uid: conformance::unique_uid("layout") };
    let rt = &*s.runtime;
    let sandbox = conformance::sandbox(rt, &pod.uid).await;
    let ip = sandbox.ip.clone().expect("a pod IP");
    assert!(ip.starts_with("10.244."), "from the default subnet 10.244.0.0/16: {ip}");
    let id = conformance::run(rt, &conformance::shell(&s, &pod.uid, "app", "hostname; ip addr 2>/dev/null")).await;
    assert_eq!(conformance::exited(rt, &id).await.0, 0);
    let log = conformance::log_contains(rt, &id, "pod\n").await;
    assert!(log.contains(&ip), "the app container is in the sandbox's network namespace: {log}");
    conformance::cleanup(rt, &pod.uid).await;
}
