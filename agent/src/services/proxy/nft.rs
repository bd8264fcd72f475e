//! Running `nft`: [`apply`] a rendered script, [`apply_change`] from one to the next,
//! [`remove`] a table, list the [`tables`].
//!
//! `nft` runs in the network namespace of the calling thread. One caller per table at a
//! time (the proxy loop): [`apply`] reads the table between its two transactions.

use std::io;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::rules;
use crate::error::AgentError;

/// How long one `nft` run may take. Tens of thousands of rules load in about a second; a
/// run stuck far longer (a wedged netlink socket) must not stall the proxy loop, which
/// retries instead.
const NFT_TIMEOUT: Duration = Duration::from_secs(30);

/// Apply `script` (from [`super::render`]) as one `nft -f` transaction: on failure nothing
/// changed and the error carries nft's message. Then delete the table's chains and sets
/// the script no longer declares (a removed Service port's, a gone endpoint's), which the
/// script left empty and unreferenced; a script that does not start with `add table ip
/// <name>` is applied as is, without that sweep.
pub async fn apply(script: &str) -> Result<(), AgentError> {
    nft(&["-f", "-"], Some(script)).await?;
    let Some(table) = script.lines().next().and_then(|line| line.strip_prefix("add table ip ")) else {
        return Ok(());
    };
    sweep(table, script).await
}

/// Go from the applied script `old` to `new` (both from [`super::render`]) touching only
/// what changed (see [`super::delta`]); a full [`apply`] of `new` when a delta is not
/// certain to be right. On failure the caller must not assume `old` is still in place
/// exactly, and should apply the next script in full. True when the change was applied
/// incrementally.
pub async fn apply_change(old: &str, new: &str) -> Result<bool, AgentError> {
    let Some((change, deletes)) = super::delta::delta(old, new) else {
        return apply(new).await.map(|()| false);
    };
    if !change.is_empty() {
        nft(&["-f", "-"], Some(&change)).await?;
    }
    if !deletes.is_empty() {
        nft(&["-f", "-"], Some(&deletes)).await?;
    }
    Ok(true)
}

/// Delete table `table` (family ip) if it exists.
pub async fn remove(table: &str) -> Result<(), AgentError> {
    // `add` first makes `delete` succeed on a missing table (nft 1.0.6 has no `destroy`).
    nft(&["-f", "-"], Some(&format!("add table ip {table}\ndelete table ip {table}\n"))).await?;
    Ok(())
}

/// The names of the tables of family ip.
pub async fn tables() -> Result<Vec<String>, AgentError> {
    let listing = nft(&["list", "tables", "ip"], None).await?;
    Ok(listing.lines().filter_map(|l| l.strip_prefix("table ip ")).map(|t| t.trim().to_string()).collect())
}

/// Delete what `table` holds beyond what `script` declares.
async fn sweep(table: &str, script: &str) -> Result<(), AgentError> {
    let listing = nft(&["-t", "list", "table", "ip", table], None).await?;
    let keep = rules::declared(script);
    let stale: Vec<(String, String)> = rules::declared(&listing).difference(&keep).cloned().collect();
    if stale.is_empty() {
        return Ok(());
    }
    tracing::debug!(table, stale = stale.len(), "deleting service proxy objects no longer declared");
    // Chains first: a stale chain is empty after the flush, but deleting a set some rule
    // still used would fail the transaction.
    let (chains, sets): (Vec<_>, Vec<_>) = stale.iter().partition(|(kind, _)| kind == "chain");
    let deletes: String =
        chains.iter().chain(&sets).map(|(kind, name)| format!("delete {kind} ip {table} {name}\n")).collect();
    nft(&["-f", "-"], Some(&deletes)).await?;
    Ok(())
}

/// Run `nft args`, feeding it `input`; its stdout, or an error with its stderr.
///
/// nft reads the ruleset (netlink dumps) before it commits anything; when another process
/// changes the ruleset meanwhile (another agent on this host), the dump is interrupted and
/// nft 1.0 gives up with "Interrupted system call". Nothing was committed then, so the run
/// is simply repeated, a few times.
pub async fn nft(args: &[&str], input: Option<&str>) -> Result<String, AgentError> {
    let mut attempt = 1;
    loop {
        match nft_once(args, input).await {
            Err(AgentError::Services(m)) if m.contains(INTERRUPTED) && attempt < DUMP_ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

/// What nft says when a netlink dump was interrupted by a concurrent change.
const INTERRUPTED: &str = "Interrupted system call";
/// Runs of one nft command while its dumps keep being interrupted.
const DUMP_ATTEMPTS: usize = 5;

async fn nft_once(args: &[&str], input: Option<&str>) -> Result<String, AgentError> {
    let what = format!("nft {}", args.join(" "));
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot run {what}: {e}")))?;
    let stdin = child.stdin.take();
    let feed = async move {
        if let (Some(mut pipe), Some(text)) = (stdin, input) {
            pipe.write_all(text.as_bytes()).await?;
        }
        Ok::<(), io::Error>(()) // the pipe closes here: end of input
    };
    let run = async { tokio::join!(feed, child.wait_with_output()) };
    let (fed, output) = tokio::time::timeout(NFT_TIMEOUT, run)
        .await
        .map_err(|_| failed(format!("{what} did not finish within {NFT_TIMEOUT:?}")))?;
    let output = output.map_err(|e| failed(format!("waiting for {what}: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(failed(format!("{what} failed ({}): {}", output.status, stderr.trim_end())));
    }
    fed.map_err(|e| failed(format!("feeding {what}: {e}")))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// There is no proxy variant in [`AgentError`]; a host tool failing is closest to the
/// runtime failing.
fn failed(message: String) -> AgentError {
    AgentError::Services(message)
}
