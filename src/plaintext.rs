//! `--insecure-plaintext`: plain `http://` URLs for `flotilla server`, `agent` and `up`,
//! refused unless asked for, and said loudly when they are.
//!
//! Rules: a plain URL without the flag is an error that names the flag and says why; with
//! the flag, [`WARNING`] is logged (as a warning) before anything listens or connects.

use anyhow::bail;

/// Said on stderr when plain HTTP is asked for.
pub const WARNING: &str = "\
flotilla: WARNING: --insecure-plaintext: the Kubernetes API, the etcd API, Raft and the agents'
flotilla: WARNING: endpoints are plain HTTP without authentication. Anyone who can reach these
flotilla: WARNING: ports (on loopback: any user of this machine) can read every Secret and run
flotilla: WARNING: anything on the agents. For local experiments only.";

/// Refuse plain `urls` (of `what`, a flag name) unless `allowed`; warn when they are used.
pub fn check<S: AsRef<str>>(what: &str, urls: &[S], allowed: bool) -> anyhow::Result<()> {
    let Some(plain) = urls.iter().map(AsRef::as_ref).find(|u| u.starts_with("http://")) else { return Ok(()) };
    if !allowed {
        bail!(
            "{what} {plain} is plain HTTP, without TLS or authentication: use https:// (`flotilla server` makes \
             its own certificates with --auto-pki), or --insecure-plaintext for a local experiment"
        );
    }
    // Through the log, so that it reaches wherever the log goes (and stays JSON with
    // --log-format json).
    tracing::warn!(
        "{}",
        WARNING.lines().map(|l| l.trim_start_matches("flotilla: WARNING: ")).collect::<Vec<_>>().join(" ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_need_the_flag() {
        let err = check("--listen-api-url", &["https://a:1", "http://b:2"], false).unwrap_err().to_string();
        assert!(err.contains("--listen-api-url http://b:2 is plain HTTP") && err.contains("--insecure-plaintext"));
        assert!(check("--listen-api-url", &["http://b:2"], true).is_ok());
        assert!(check("--server", &["https://a:1"], false).is_ok());
    }
}
