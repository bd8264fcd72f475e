//! Running the real `kubectl` against a replica's Kubernetes API.
//!
//! Each [`Kubectl`] has its own `HOME` and `--cache-dir`, so no discovery cache or
//! dispatcher version cache leaks between tests (kubectl caches discovery for hours), and
//! nothing is written to the real `~/.kube`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A kubectl pointed at one API server URL, or using a kubeconfig.
pub struct Kubectl {
    target: Target,
    home: tempfile::TempDir,
}

enum Target {
    Server(String),
    Kubeconfig(PathBuf),
}

impl Kubectl {
    pub fn new(server: &str) -> Self {
        Self { target: Target::Server(server.to_string()), home: tempfile::tempdir().expect("temp HOME for kubectl") }
    }

    /// A kubectl with `KUBECONFIG=<path>` (its current context, or `--context` per call).
    pub fn with_kubeconfig(path: &Path) -> Self {
        let home = tempfile::tempdir().expect("temp HOME for kubectl");
        Self { target: Target::Kubeconfig(path.to_path_buf()), home }
    }

    /// Point at another replica, keeping the same cache (as a user switching endpoints).
    pub fn set_server(&mut self, server: &str) {
        self.target = Target::Server(server.to_string());
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.env("HOME", self.home.path());
        match &self.target {
            Target::Server(server) => cmd.env_remove("KUBECONFIG").arg(format!("--server={server}")),
            Target::Kubeconfig(path) => cmd.env("KUBECONFIG", path),
        };
        cmd.arg(format!("--cache-dir={}", self.home.path().join("cache").display()))
            .arg("--request-timeout=30s")
            .args(args);
        cmd
    }

    /// Run with `stdin` (if any); capture everything.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .command(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl is installed (it is on this machine's PATH)");
        if let Some(input) = stdin {
            child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("writing kubectl's stdin");
        }
        child.wait_with_output().expect("kubectl runs")
    }

    /// Must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None)
    }

    /// Must succeed with `stdin`; returns stdout.
    pub fn ok_with(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail but printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Start a long-running kubectl (e.g. `get -w`) with stdout piped.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("kubectl")
    }
}

/// `kubectl -n <ns> get <what...> -o jsonpath=<path>`.
pub fn jsonpath(k: &Kubectl, ns: &str, what: &[&str], path: &str) -> String {
    let mut args = vec!["-n", ns, "get"];
    args.extend_from_slice(what);
    let path = format!("jsonpath={path}");
    args.extend_from_slice(&["-o", &path]);
    k.ok(&args)
}

/// Names of the Running pods with label `app=<app>`, once there are `n`. On timeout the
/// panic shows each pod's node, phase and the reasons its containers wait or ended.
pub fn running_pods(k: &Kubectl, ns: &str, app: &str, n: usize) -> Vec<String> {
    let mut last = String::new();
    let found = crate::eventually(Duration::from_secs(90), || {
        last = jsonpath(
            k,
            ns,
            &["pods", "-l", &format!("app={app}")],
            "{range .items[*]}{.metadata.name}|{.status.phase}|{.status.podIP}|{.spec.nodeName}|\
             {range .status.containerStatuses[*]}{.state.waiting.reason}{.state.terminated.reason} {end}{\"\\n\"}{end}",
        );
        running_names(&last).len() == n
    });
    assert!(found, "timed out waiting for {n} Running pods of {app}; name|phase|IP|node|container reasons:\n{last}");
    running_names(&last)
}

fn running_names(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f.len() == 5 && f[1] == "Running" && !f[2].is_empty()).then(|| f[0].to_string())
        })
        .collect()
}
