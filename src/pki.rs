//! `flotilla pki`: the cluster's certificates, made on the machine that runs the command.
//!
//! - `init` makes a CA, a server certificate for the replicas' addresses, and an admin
//!   client certificate (user `admin`, group `system:masters`), plus, with `--server`, an
//!   admin kubeconfig that embeds all it needs.
//! - `issue` makes a server certificate (`--host`) or a client certificate (`--user`,
//!   `--group`) signed by an existing CA.
//!
//! Nothing is overwritten by `init`: a directory that already holds a CA is refused, so a
//! second run cannot silently replace the cluster's trust root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use clap::{Args, Subcommand};
use flotilla_pki::{Ca, Issued, MASTERS_GROUP as ADMIN_GROUP, REPLICAS_GROUP};

/// How long the CA is valid (10 years, as kubeadm's).
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long issued certificates are valid by default (1 year, as kubeadm's).
const DEFAULT_VALIDITY: &str = "8760h";
/// The admin's user; its group is `system:masters`, which may do anything, as upstream.
const ADMIN_USER: &str = "admin";

#[derive(Args, Debug)]
pub struct PkiArgs {
    #[command(subcommand)]
    command: PkiCommand,
}

#[derive(Subcommand, Debug)]
enum PkiCommand {
    /// Make a CA, a server certificate and an admin client certificate in DIR.
    Init(InitArgs),
    /// Make a server or client certificate signed by the CA in DIR.
    Issue(IssueArgs),
}

#[derive(Args, Debug)]
struct InitArgs {
    /// Where ca.crt/ca.key, server.crt/server.key and admin.crt/admin.key go.
    #[arg(long)]
    dir: PathBuf,
    /// Addresses and names the server certificate covers (repeat, or comma-separate).
    #[arg(long = "host", value_delimiter = ',', default_values_t = ["127.0.0.1".to_string(), "localhost".to_string()])]
    hosts: Vec<String>,
    /// Also write DIR/admin.kubeconfig for this API URL (https://…).
    #[arg(long)]
    server: Option<String>,
    /// How long the server and admin certificates are valid (e.g. 8760h, 30d).
    #[arg(long, default_value = DEFAULT_VALIDITY, value_parser = crate::bench_api::parse_duration)]
    validity: Duration,
}

#[derive(Args, Debug)]
struct IssueArgs {
    /// The directory holding ca.crt and ca.key; the new pair is written here too.
    #[arg(long)]
    dir: PathBuf,
    /// The new files' name: NAME.crt and NAME.key.
    #[arg(long)]
    name: String,
    /// A server certificate for these addresses and names (repeat, or comma-separate).
    #[arg(long = "host", value_delimiter = ',', conflicts_with = "user")]
    hosts: Vec<String>,
    /// A client certificate for this user (its subject CN).
    #[arg(long)]
    user: Option<String>,
    /// The certificate's groups (subject O values; repeat, or comma-separate). A replica's
    /// server certificate needs system:flotilla-replicas to speak to its peers.
    #[arg(long = "group", value_delimiter = ',')]
    groups: Vec<String>,
    /// How long the certificate is valid (e.g. 8760h, 30d).
    #[arg(long, default_value = DEFAULT_VALIDITY, value_parser = crate::bench_api::parse_duration)]
    validity: Duration,
}

pub async fn run(args: PkiArgs) -> anyhow::Result<()> {
    match args.command {
        PkiCommand::Init(a) => init(&a),
        PkiCommand::Issue(a) => issue(&a),
    }
}

fn init(a: &InitArgs) -> anyhow::Result<()> {
    if a.dir.join("ca.crt").exists() || a.dir.join("ca.key").exists() {
        bail!(
            "{} already holds a CA; refusing to replace it (use `flotilla pki issue` for more certificates)",
            a.dir.display()
        );
    }
    let ca = Ca::generate("flotilla-ca", CA_VALIDITY).context("generating the CA")?;
    ca.save(&a.dir)?;
    let server = ca.issue_server("flotilla-apiserver", &[REPLICAS_GROUP.to_string()], &a.hosts, a.validity)?;
    server.save(&a.dir, "server")?;
    let admin = ca.issue_client(ADMIN_USER, &[ADMIN_GROUP.to_string()], a.validity)?;
    admin.save(&a.dir, "admin")?;
    println!("wrote {}: ca.crt, ca.key, server.crt/.key ({}), admin.crt/.key", a.dir.display(), a.hosts.join(", "));
    if let Some(server_url) = &a.server {
        let path = a.dir.join("admin.kubeconfig");
        write_private(&path, &kubeconfig(server_url, ca.cert_pem(), &admin))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn issue(a: &IssueArgs) -> anyhow::Result<()> {
    if a.name == "ca" {
        bail!("--name ca would replace the CA's own files; choose another name");
    }
    let ca = Ca::load(&a.dir)?;
    let issued = match (&a.user, a.hosts.is_empty()) {
        (Some(user), true) => ca.issue_client(user, &a.groups, a.validity)?,
        (None, false) => ca.issue_server(&a.name, &a.groups, &a.hosts, a.validity)?,
        (None, true) => bail!("name --host (a server certificate) or --user (a client certificate)"),
        (Some(_), false) => bail!("--host and --user do not go together"),
    };
    issued.save(&a.dir, &a.name)?;
    println!("wrote {}/{}.crt and {}.key", a.dir.display(), a.name, a.name);
    Ok(())
}

/// A kubeconfig for `server` as the holder of `client`, trusting `ca_pem`; everything embedded.
pub fn kubeconfig(server: &str, ca_pem: &str, client: &Issued) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: flotilla\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {}\ncontexts:\n- name: flotilla\n  context:\n    cluster: flotilla\n    \
         user: admin\ncurrent-context: flotilla\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    \
         client-key-data: {}\n",
        b64(ca_pem),
        b64(&client.cert_pem),
        b64(&client.key_pem)
    )
}

/// Write `text` to `path` readable by its owner only (it holds a private key).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}
