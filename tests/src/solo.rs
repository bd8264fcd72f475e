//! One `flotilla server` replica on its own ports and data dir, restartable with other flags,
//! for tests of one replica's behaviour (flags, files on disk); killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::kube::Kubectl;
use crate::{flotilla_bin, free_port, wait_for};

pub struct Solo {
    pub dir: PathBuf,
    pub client: String,
    pub peer: String,
    pub api: String,
    child: Option<Child>,
}

impl Solo {
    /// Ports chosen now; data in `dir/data`, log in `dir/server.log`.
    pub fn new(dir: &Path) -> Self {
        let url = |p: u16| format!("http://127.0.0.1:{p}");
        Self {
            dir: dir.to_path_buf(),
            client: url(free_port()),
            peer: url(free_port()),
            api: url(free_port()),
            child: None,
        }
    }

    /// (Re)start with `extra` flags; returns once the Kubernetes API answers.
    pub fn start(&mut self, extra: &[&str]) {
        let k = Kubectl::new(&self.api);
        self.start_checked_by(extra, &k);
    }

    /// (Re)start with `extra` flags; returns once `k` (e.g. with credentials) gets an answer.
    pub fn start_checked_by(&mut self, extra: &[&str], k: &Kubectl) {
        self.stop();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("server.log")).unwrap();
        let child = Command::new(flotilla_bin())
            .args(["server", "--name", "solo", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &self.client, "--listen-peer-urls", &self.peer])
            .args(["--listen-api-url", &self.api])
            // The store's ports are plain HTTP (SecureSolo puts only the API on https).
            .arg("--insecure-plaintext")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start flotilla server");
        self.child = Some(child);
        wait_for(Duration::from_secs(30), "the API to answer", || {
            k.run(&["get", "namespace", "default"], None).status.success().then_some(())
        });
    }

    /// SIGTERM, and wait for the exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for Solo {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
