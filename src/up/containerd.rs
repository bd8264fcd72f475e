//! `flotilla up --agent-runtime containerd`: make sure a containerd daemon answers, starting
//! a private one (Debian's `containerd`, its own config, root, state and socket under
//! `/var/tmp/flotilla-containerd`, like `scripts/start-containerd`) when none does.
//!
//! The private daemon is left running when `up` stops, like the Docker daemon: pods'
//! containers outlive their agents by design.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};

/// How long a started daemon may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// True when something accepts connections on the socket.
async fn answers(socket: &Path) -> bool {
    tokio::net::UnixStream::connect(socket).await.is_ok()
}

/// Ensure a daemon answers at `socket`, starting a private one in the socket's directory.
pub async fn ensure(socket: &Path) -> anyhow::Result<()> {
    if answers(socket).await {
        return Ok(());
    }
    let dir = socket.parent().context("the containerd socket has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = dir.join("config.toml");
    let text = format!(
        "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\n[grpc]\n  address = \"{s}\"\n\n\
         [ttrpc]\n  address = \"{s}.ttrpc\"\n",
        d = dir.display(),
        s = socket.display()
    );
    std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("containerd.log"))?;
    let child = std::process::Command::new("containerd")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting containerd (apt-get install containerd)")?;
    std::fs::write(dir.join("containerd.pid"), child.id().to_string())?;
    println!(
        "flotilla: started containerd (pid {}) at {}; it keeps running after up stops",
        child.id(),
        socket.display()
    );
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    while !answers(socket).await {
        if tokio::time::Instant::now() > deadline {
            bail!(
                "containerd did not answer at {} within {START_TIMEOUT:?}; see {}/containerd.log",
                socket.display(),
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
