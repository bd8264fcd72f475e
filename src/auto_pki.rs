//! `flotilla server --auto-pki`: the replicas make and share the cluster's PKI themselves, as
//! k3s servers do, so a TLS cluster needs no `flotilla pki` step and no files to copy.
//!
//! - **The first replica** (no `--server-token`) makes, on its first start, in
//!   `DATA_DIR/pki`: the CA (`ca.crt`, `ca.key`), the ServiceAccount key (`sa.key`), its
//!   server certificate (`server.crt`/`.key`) for every host of its URLs plus `--tls-san`,
//!   the admin's certificate with `admin.kubeconfig`, and the server token (`server-token`:
//!   `F10<hex SHA-256 of the CA certificate>::<secret>`), which it logs.
//! - **Another replica** starts with `--server-token` and `--join-api-url` (a member's
//!   Kubernetes API), usually with `--join`. On its first start it fetches the CA without
//!   verifying the member, keeps it only if its SHA-256 is the token's, then, verifying the
//!   member with it, posts the token's secret and receives the CA's key and `sa.key`
//!   (`apiserver::http::cluster_pki`). It makes its own server certificate and goes on as
//!   usual (its `--join` registration presents that certificate).
//! - **Every replica** then runs with the flags of a TLS install pointing at `DATA_DIR/pki`
//!   (docs/INSTALL.md section 5), which therefore may not be given with `--auto-pki`; every
//!   URL must be `https://`. It serves the hand-over to the replicas that join after it.
//! - **Renewal:** each replica renews its own server certificate two thirds into its
//!   lifetime with the CA it holds; the listeners follow the files without a restart.
//!
//! Invariants:
//! - A restart changes nothing: `ca.crt` marks a finished set-up (it is written last), and
//!   a file already there is never replaced, except `server.crt`/`.key` by renewal.
//! - The CA key reaches only a caller that knows the secret, over TLS that the caller
//!   verified against the CA its token names; a token for another CA fails before the
//!   secret is sent.
//! - Files with keys and the token are 0600.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use flotilla_apiserver::http::cluster_pki::{ClusterPki, BUNDLE_PATH, CA_PATH};
use flotilla_pki::Ca;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::api_security::ApiSecurityArgs;
use crate::bench_api::client::Conn;
use crate::dial::ClientTls;
use crate::pki::{write_private, SERVICE_ACCOUNT_KEY};
use crate::store_security::StoreSecurityArgs;

/// The server token's prefix (k3s's is `K10`).
const TOKEN_PREFIX: &str = "F10";
const TOKEN_FILE: &str = "server-token";
/// How long a joining replica keeps trying to reach the member it fetches the PKI from.
const FETCH_FOR: Duration = Duration::from_secs(120);
/// Shortest validity of the certificates made here (tests shorten it to watch renewals).
const MIN_VALIDITY: Duration = Duration::from_secs(30);
/// Bound on the unverified answer with the CA certificate.
const MAX_CA_BYTES: usize = 64 * 1024;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct AutoPkiArgs {
    /// Make the cluster's CA and certificates in DATA_DIR/pki on the first start (the first
    /// replica), or fetch them with --server-token (the others), and serve TLS everywhere.
    #[arg(long, env = "FLOTILLA_AUTO_PKI", default_value_t = false)]
    pub auto_pki: bool,
    /// With --auto-pki: the token in the first replica's DATA_DIR/pki/server-token; this
    /// replica then fetches the cluster's CA from --join-api-url.
    #[arg(long, env = "FLOTILLA_SERVER_TOKEN", hide_env_values = true, requires = "join_api_url")]
    pub server_token: Option<String>,
    /// The same, read from a file (the command line is visible to every user of the machine).
    #[arg(
        long,
        env = "FLOTILLA_SERVER_TOKEN_FILE",
        value_name = "FILE",
        conflicts_with = "server_token",
        requires = "join_api_url"
    )]
    pub server_token_file: Option<PathBuf>,
    /// With --server-token: a running replica's Kubernetes API (https://host:6443).
    #[arg(long, env = "FLOTILLA_JOIN_API_URL", value_name = "URL")]
    pub join_api_url: Option<String>,
    /// With --auto-pki: more names or addresses for this replica's server certificate (its
    /// URLs' hosts, localhost and 127.0.0.1 are always in it).
    #[arg(long, env = "FLOTILLA_TLS_SAN", value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// How long the server certificates --auto-pki makes are valid (renewed at two thirds;
    /// the admin's is valid a year).
    #[arg(long, hide = true, default_value = "8760h", value_parser = crate::bench_api::parse_duration)]
    pub auto_pki_validity: Duration,
}

/// What --auto-pki needs to know of this replica.
pub struct Plan<'a> {
    pub data_dir: &'a Path,
    /// Every URL this replica listens on or advertises: their hosts go in its certificate.
    pub urls: Vec<String>,
    /// The Kubernetes API URL for the admin's kubeconfig.
    pub api_url: String,
    /// The replica joins a running cluster (`--join`).
    pub joining: bool,
}

/// Turn on --auto-pki for a replica whose URLs are all `https://` and that names no
/// certificate files: TLS by default, with certificates the replicas make (as k3s). A
/// replica that joins (`--join`) that way needs the first one's `--server-token`, since a
/// CA of its own would not be the cluster's.
pub fn imply<S: AsRef<str>>(
    a: &mut AutoPkiArgs,
    urls: &[S],
    joining: bool,
    store: &StoreSecurityArgs,
    api: &ApiSecurityArgs,
) -> anyhow::Result<()> {
    let all_https = urls.iter().all(|u| u.as_ref().starts_with("https://"));
    if a.auto_pki || !all_https || refuse_given_files(store, api).is_err() {
        return Ok(());
    }
    if joining && a.server_token.is_none() && a.server_token_file.is_none() {
        bail!(
            "a replica that joins over https:// needs certificate flags, or --server-token and --join-api-url \
             (the first replica's DATA_DIR/pki/server-token, with --auto-pki)"
        );
    }
    tracing::info!("https:// URLs and no certificate flags: the replicas make the PKI (--auto-pki)");
    a.auto_pki = true;
    Ok(())
}

/// The PKI of this replica, made or fetched if needed, with the security flags set to it;
/// `None` without `--auto-pki`. Also returns the hosts its certificate covers (for renewal).
pub async fn prepare(
    a: &AutoPkiArgs,
    plan: &Plan<'_>,
    store: &mut StoreSecurityArgs,
    api: &mut ApiSecurityArgs,
) -> anyhow::Result<Option<(Arc<ClusterPki>, Vec<String>)>> {
    if !a.auto_pki {
        if a.server_token.is_some() || a.server_token_file.is_some() || !a.tls_san.is_empty() {
            bail!("--server-token, --server-token-file and --tls-san need --auto-pki");
        }
        return Ok(None);
    }
    let token = match &a.server_token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--server-token-file {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => a.server_token.clone(),
    };
    if a.join_api_url.is_some() != token.is_some() {
        bail!("--join-api-url and --server-token (or --server-token-file) go together");
    }
    refuse_given_files(store, api)?;
    if plan.api_url.is_empty() {
        bail!("--auto-pki needs --listen-api-url: joining replicas fetch the PKI from it");
    }
    if let Some(url) = plan.urls.iter().chain([&plan.api_url]).find(|u| !u.starts_with("https://")) {
        bail!("--auto-pki serves TLS only: {url} must be https://");
    }
    if let Some(url) = a.join_api_url.as_deref().filter(|u| !u.starts_with("https://")) {
        bail!("--join-api-url {url} must be https://");
    }
    if a.auto_pki_validity < MIN_VALIDITY {
        bail!("--auto-pki-validity must be at least {MIN_VALIDITY:?}");
    }
    let dir = plan.data_dir.join("pki");
    make_private_dir(&dir)?;
    // A set-up that stopped between the CA's key and its certificate starts over.
    if !dir.join("ca.crt").exists() && dir.join("ca.key").exists() {
        std::fs::remove_file(dir.join("ca.key")).context("removing a CA key left without its certificate")?;
    }
    let hosts = hosts(&plan.urls, &a.tls_san);
    if !dir.join("ca.crt").exists() {
        match (&token, &a.join_api_url) {
            (Some(token), Some(url)) => fetch(&dir, url, token).await?,
            _ if plan.joining => bail!(
                "--auto-pki with --join needs --server-token and --join-api-url: a CA of this replica's own would \
                 not be the cluster's"
            ),
            _ => found(&dir, &hosts, &kubeconfig_url(&plan.api_url, &hosts), a.auto_pki_validity)?,
        }
    }
    let ca = Ca::load(&dir).context("the CA in DATA_DIR/pki")?;
    let current = std::fs::read_to_string(dir.join("server.crt")).ok();
    if !current.as_deref().is_some_and(|pem| covers(pem, &hosts)) {
        if current.is_some() {
            tracing::info!(?hosts, "--auto-pki: this replica's hosts changed; issuing its server certificate again");
        }
        crate::pki::issue_replica(&ca, &dir, &hosts, a.auto_pki_validity)?;
    }
    set_flags(&dir, store, api);
    let read =
        |name: &str| std::fs::read_to_string(dir.join(name)).with_context(|| format!("reading DATA_DIR/pki/{name}"));
    let token = read(TOKEN_FILE)?;
    let (_, secret) = parse_token(token.trim())?;
    let pki = ClusterPki {
        secret: secret.to_string(),
        ca_cert: ca.cert_pem().to_string(),
        ca_key: read("ca.key")?,
        service_account_key: read(SERVICE_ACCOUNT_KEY)?,
    };
    Ok(Some((Arc::new(pki), hosts)))
}

/// The flags --auto-pki sets; given by hand they would disagree with it.
fn refuse_given_files(store: &StoreSecurityArgs, api: &ApiSecurityArgs) -> anyhow::Result<()> {
    let given = [
        ("--peer-cert-file", store.peer_cert_file.is_some()),
        ("--peer-key-file", store.peer_key_file.is_some()),
        ("--peer-trusted-ca-file", store.peer_trusted_ca_file.is_some()),
        ("--cert-file", store.cert_file.is_some()),
        ("--key-file", store.key_file.is_some()),
        ("--trusted-ca-file", store.trusted_ca_file.is_some()),
        ("--tls-cert-file", api.tls_cert_file.is_some()),
        ("--tls-private-key-file", api.tls_private_key_file.is_some()),
        ("--client-ca-file", api.client_ca_file.is_some()),
        ("--cluster-signing-cert-file", api.cluster_signing_cert_file.is_some()),
        ("--cluster-signing-key-file", api.cluster_signing_key_file.is_some()),
        ("--service-account-signing-key-file", api.service_account_signing_key_file.is_some()),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((flag, _)) => bail!("{flag} cannot be given with --auto-pki, which uses the files in DATA_DIR/pki"),
        None => Ok(()),
    }
}

fn set_flags(dir: &Path, store: &mut StoreSecurityArgs, api: &mut ApiSecurityArgs) {
    let file = |name: &str| Some(dir.join(name));
    (store.peer_cert_file, store.peer_key_file, store.peer_trusted_ca_file) =
        (file("server.crt"), file("server.key"), file("ca.crt"));
    (store.cert_file, store.key_file, store.trusted_ca_file) = (file("server.crt"), file("server.key"), file("ca.crt"));
    store.client_cert_auth = true;
    (api.tls_cert_file, api.tls_private_key_file, api.client_ca_file) =
        (file("server.crt"), file("server.key"), file("ca.crt"));
    (api.cluster_signing_cert_file, api.cluster_signing_key_file) = (file("ca.crt"), file("ca.key"));
    api.service_account_signing_key_file = file(SERVICE_ACCOUNT_KEY);
    api.enable_bootstrap_token_auth = true;
}

/// Whether certificate `pem` names every one of `hosts` (IP addresses compared as addresses).
fn covers(pem: &str, hosts: &[String]) -> bool {
    let canonical =
        |h: &str| h.parse::<std::net::IpAddr>().map_or_else(|_| h.to_ascii_lowercase(), |ip| ip.to_string());
    let Ok(named) = flotilla_pki::certificate_hosts(pem) else { return false };
    let named: Vec<String> = named.iter().map(|h| canonical(h)).collect();
    hosts.iter().all(|h| named.contains(&canonical(h)))
}

/// The hosts of `urls` (but not the wildcard addresses), `extra`, localhost and 127.0.0.1.
fn hosts(urls: &[String], extra: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = vec!["127.0.0.1".into(), "localhost".into()];
    let named = urls.iter().map(|u| crate::urls::host(u).to_string()).chain(extra.iter().cloned());
    for host in named.filter(|h| !matches!(h.as_str(), "" | "0.0.0.0" | "::")) {
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts
}

/// The API URL for the admin's kubeconfig: `api_url`, its wildcard host (listening
/// everywhere) replaced by this replica's first named host.
fn kubeconfig_url(api_url: &str, hosts: &[String]) -> String {
    let host = crate::urls::host(api_url);
    if !matches!(host, "0.0.0.0" | "::") {
        return api_url.to_string();
    }
    let named = hosts.iter().find(|h| !matches!(h.as_str(), "127.0.0.1" | "localhost")).map_or("127.0.0.1", |h| h);
    let named = if named.contains(':') { format!("[{named}]") } else { named.to_string() };
    let port = api_url.rsplit_once(':').map_or("6443", |(_, p)| p.trim_end_matches('/'));
    format!("https://{named}:{port}")
}

/// The first replica's PKI: CA, server and admin certificates, sa.key, admin.kubeconfig and
/// the server token. `ca.crt` is written last.
fn found(dir: &Path, hosts: &[String], api_url: &str, validity: Duration) -> anyhow::Result<()> {
    let ca = Ca::generate("flotilla-ca", crate::pki::CA_VALIDITY).context("generating the CA")?;
    crate::pki::issue_replica(&ca, dir, hosts, validity)?;
    let admin = crate::pki::issue_admin(&ca, dir, crate::pki::VALIDITY)?;
    crate::pki::service_account_key(dir)?;
    write_private(&dir.join("admin.kubeconfig"), &crate::pki::kubeconfig(api_url, ca.cert_pem(), &admin))?;
    let secret = crate::token::random(32);
    let token = format!("{TOKEN_PREFIX}{}::{secret}", flotilla_pki::certificate_sha256(ca.cert_pem())?);
    write_private(&dir.join(TOKEN_FILE), &format!("{token}\n"))?;
    ca.save(dir)?;
    tracing::info!(
        dir = %dir.display(),
        "made the cluster's CA, certificates and server token; other replicas join with \
         --auto-pki --join-api-url <this API URL> --server-token \"$(cat {}/{TOKEN_FILE})\"",
        dir.display()
    );
    Ok(())
}

/// `(CA hash, secret)` of a server token.
fn parse_token(token: &str) -> anyhow::Result<(&str, &str)> {
    let parsed = token.strip_prefix(TOKEN_PREFIX).and_then(|rest| rest.split_once("::"));
    match parsed {
        Some((hash, secret))
            if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty() =>
        {
            Ok((hash, secret))
        }
        _ => bail!("a server token looks like {TOKEN_PREFIX}<64 hex digits>::<secret> (DATA_DIR/pki/server-token)"),
    }
}

/// A joining replica's PKI from the member at `url`; `ca.crt` is written last.
async fn fetch(dir: &Path, url: &str, token: &str) -> anyhow::Result<()> {
    let (hash, secret) = parse_token(token)?;
    let deadline = tokio::time::Instant::now() + FETCH_FOR;
    let ca_pem = loop {
        match fetch_ca(url).await {
            Ok(pem) => break pem,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::info!(error = format!("{e:#}"), "--auto-pki: waiting for {url}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.context(format!("--auto-pki: fetching the cluster CA from {url}"))),
        }
    };
    // One certificate, and the one the token names: nothing else may ride along into trust.
    if !flotilla_pki::certificate_sha256(&ca_pem)?.eq_ignore_ascii_case(hash) {
        bail!("--auto-pki: the CA at {url} is not the one the server token names; not sending the secret");
    }
    let tls = ClientTls::from_pem(&ca_pem)?;
    let mut conn = Conn::connect_with(url, Some(&tls)).await.with_context(|| format!("--auto-pki: {url}"))?;
    let body = json!({"secret": secret});
    let bundle: Value = conn
        .call_json(Method::POST, BUNDLE_PATH, Some(&body), StatusCode::OK)
        .await
        .context("--auto-pki: fetching the cluster PKI with the server token's secret")?;
    let field = |name: &str| bundle[name].as_str().map(String::from).with_context(|| format!("the PKI lacks {name}"));
    let (ca_cert, ca_key, sa_key) = (field("caCert")?, field("caKey")?, field("serviceAccountKey")?);
    if ca_cert.trim() != ca_pem.trim() {
        bail!("--auto-pki: {url} handed over another CA than it serves");
    }
    let ca = Ca::from_pem(&ca_cert, &ca_key).context("--auto-pki: the CA handed over")?;
    flotilla_pki::jwt::JwtSigner::from_pem(&sa_key).context("--auto-pki: the service account key handed over")?;
    write_private(&dir.join(SERVICE_ACCOUNT_KEY), &sa_key)?;
    write_private(&dir.join(TOKEN_FILE), &format!("{token}\n"))?;
    ca.save(dir)?;
    tracing::info!(from = url, "--auto-pki: received the cluster's CA and keys");
    Ok(())
}

async fn fetch_ca(url: &str) -> anyhow::Result<String> {
    let mut conn = Conn::connect_with(url, Some(&ClientTls::unverified()?)).await?;
    let pem = conn.call(Method::GET, CA_PATH, None, StatusCode::OK).await?;
    if pem.len() > MAX_CA_BYTES {
        bail!("the CA certificate is {} bytes, over {MAX_CA_BYTES}", pem.len());
    }
    Ok(String::from_utf8(pem.to_vec())?)
}

/// `dir`, made if missing, readable by its owner only.
fn make_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private", dir.display()))
}

/// Renew this replica's server certificate in `dir` two thirds into its lifetime, for
/// `hosts`, until `cancel` fires.
pub async fn renew(dir: PathBuf, hosts: Vec<String>, validity: Duration, cancel: tokio_util::sync::CancellationToken) {
    loop {
        let due = match std::fs::read_to_string(dir.join("server.crt")) {
            Ok(pem) => flotilla_pki::renew_at(&pem),
            Err(_) => SystemTime::now(),
        };
        // At least a second between renewals, whatever the certificate says.
        let wait = due.duration_since(SystemTime::now()).unwrap_or_default().max(Duration::from_secs(1));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let renewed = Ca::load(&dir)
            .map_err(anyhow::Error::from)
            .and_then(|ca| crate::pki::issue_replica(&ca, &dir, &hosts, validity));
        match renewed {
            Ok(()) => tracing::info!("--auto-pki: renewed this replica's server certificate"),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "--auto-pki: cannot renew the server certificate; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_a_hash_and_a_secret() {
        let hash = "ab".repeat(32);
        assert_eq!(parse_token(&format!("F10{hash}::s3cret")).unwrap(), (hash.as_str(), "s3cret"));
        for bad in
            ["", "F10::x", &format!("K10{hash}::x"), &format!("F10{hash}::"), &format!("F10{}::x", "zz".repeat(32))]
        {
            assert!(parse_token(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_second_certificate_cannot_ride_along_with_the_hashed_ca() {
        let hour = Duration::from_secs(3600);
        let (ca, rogue) = (Ca::generate("ca", hour).unwrap(), Ca::generate("rogue", hour).unwrap());
        assert_eq!(flotilla_pki::certificate_sha256(ca.cert_pem()).unwrap().len(), 64);
        let both = format!("{}{}", ca.cert_pem(), rogue.cert_pem());
        assert!(flotilla_pki::certificate_sha256(&both).is_err(), "two certificates are refused before hashing");
    }

    #[test]
    fn a_certificate_is_issued_again_when_the_hosts_grow() {
        let ca = Ca::generate("ca", Duration::from_secs(3600)).unwrap();
        let hosts = |h: &[&str]| h.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        let issued = ca.issue_server("s", &[], &hosts(&["127.0.0.1", "localhost", "fd00::1"]), MIN_VALIDITY).unwrap();
        assert!(
            covers(&issued.cert_pem, &hosts(&["localhost", "FD00:0::1"])),
            "a subset, an address spelled otherwise"
        );
        assert!(!covers(&issued.cert_pem, &hosts(&["127.0.0.1", "lb.example"])), "a new --tls-san");
        assert!(!covers("garbage", &hosts(&["localhost"])));
    }

    #[test]
    fn the_certificate_covers_every_url_host_but_wildcards() {
        let urls = ["https://10.0.0.1:2380", "https://0.0.0.0:6443", "https://[fd00::1]:2379", "https://n1.lan:2379"];
        let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
        let got = hosts(&urls, &["lb.example".into(), "10.0.0.1".into()]);
        assert_eq!(got, ["127.0.0.1", "localhost", "10.0.0.1", "fd00::1", "n1.lan", "lb.example"]);
    }

    #[test]
    fn the_admins_kubeconfig_names_a_reachable_host() {
        let hosts: Vec<String> = ["127.0.0.1", "localhost", "10.0.0.1"].iter().map(|h| h.to_string()).collect();
        assert_eq!(kubeconfig_url("https://0.0.0.0:6443", &hosts), "https://10.0.0.1:6443");
        assert_eq!(kubeconfig_url("https://10.0.0.9:6443", &hosts), "https://10.0.0.9:6443");
        assert_eq!(kubeconfig_url("https://0.0.0.0:7000", &hosts[..2]), "https://127.0.0.1:7000");
    }

    #[test]
    fn https_without_certificate_flags_means_auto_pki() {
        let (store, mut api) = (StoreSecurityArgs::default(), ApiSecurityArgs::default());
        let https = ["https://127.0.0.1:2379", "https://127.0.0.1:6443"];
        let mut a = AutoPkiArgs::default();
        imply(&mut a, &https, false, &store, &api).unwrap();
        assert!(a.auto_pki, "TLS by default");
        let mut plain = AutoPkiArgs::default();
        imply(&mut plain, &["http://127.0.0.1:6443", "https://127.0.0.1:2379"], false, &store, &api).unwrap();
        assert!(!plain.auto_pki);
        let err = imply(&mut AutoPkiArgs::default(), &https, true, &store, &api).unwrap_err().to_string();
        assert!(err.contains("--server-token"), "{err}");
        api.tls_cert_file = Some("/x/server.crt".into());
        let mut files = AutoPkiArgs::default();
        imply(&mut files, &https, true, &store, &api).unwrap();
        assert!(!files.auto_pki, "certificate flags: the files given");
    }

    #[test]
    fn the_files_flags_are_refused_and_then_set() {
        let (mut store, mut api) = (StoreSecurityArgs::default(), ApiSecurityArgs::default());
        api.client_ca_file = Some("/x/ca.crt".into());
        let err = refuse_given_files(&store, &api).unwrap_err().to_string();
        assert!(err.contains("--client-ca-file cannot be given with --auto-pki"), "{err}");
        api.client_ca_file = None;
        set_flags(Path::new("/d/pki"), &mut store, &mut api);
        assert_eq!(store.peer_cert_file.as_deref(), Some(Path::new("/d/pki/server.crt")));
        assert_eq!(api.cluster_signing_key_file.as_deref(), Some(Path::new("/d/pki/ca.key")));
        assert!(store.client_cert_auth && api.enable_bootstrap_token_auth);
        assert!(refuse_given_files(&store, &api).is_err(), "set by --auto-pki, so a second prepare would refuse");
    }
}
