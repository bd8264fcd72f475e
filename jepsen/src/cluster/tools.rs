//! The host tools the harness drives (`ip`, `nft`, libfaketime) and the root check.
//!
//! Invariant: every external command goes through [`run`], which fails with the command line
//! and its stderr, so a broken set-up reads as such instead of as a mysterious test failure.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

/// Where Debian's `faketime` package puts the preload library.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Fail clearly unless we run as root: namespaces, links and nftables need it.
pub fn require_root() -> anyhow::Result<()> {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the jepsen cluster needs root (network namespaces, veth links, nftables); run it as root like CI does");
    }
    Ok(())
}

/// Make sure `ip`, `nft` and libfaketime are installed, installing the Debian packages
/// (`iproute2`, `nftables`, `faketime`) with apt when one is missing.
pub fn ensure_tools() -> anyhow::Result<()> {
    require_root()?;
    let mut missing = Vec::new();
    if !on_path("ip") {
        missing.push("iproute2");
    }
    if !on_path("nft") {
        missing.push("nftables");
    }
    if !Path::new(LIBFAKETIME).exists() {
        missing.push("faketime");
    }
    if missing.is_empty() {
        return Ok(());
    }
    tracing::info!(?missing, "installing missing packages with apt");
    run(Command::new("apt-get").arg("update").arg("-q"))?;
    run(Command::new("apt-get").args(["install", "-y", "-q"]).args(&missing).env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(())
}

fn on_path(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

/// Run a command to completion; an error names the command and carries its stderr.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let line = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("running {line}"))?;
    if !out.status.success() {
        bail!("{line} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip <args>`.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    run(Command::new("ip").args(args))
}

/// `ip netns exec <ns> <args>`.
pub fn in_ns(ns: &str, args: &[&str]) -> anyhow::Result<String> {
    run(Command::new("ip").args(["netns", "exec", ns]).args(args))
}
