//! `flotilla pki`: the cluster's certificates, made on the machine that runs the command.
//!
//! - `init` makes a CA, a server certificate for the replicas' addresses, an admin client
//!   certificate (user `admin`, group `system:masters`) and the key replicas sign
//!   ServiceAccount tokens with (`sa.key`), plus, with `--server`, an admin kubeconfig that
//!   embeds all it needs.
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
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long issued certificates are valid by default (1 year, as kubeadm's).
const DEFAULT_VALIDITY: &str = "8760h";
/// The same, as a duration.
pub const VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
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
    let (ca, admin) = init_dir(&a.dir, &a.hosts, a.validity)?;
    let dir = a.dir.display();
    println!("wrote {dir}: ca.crt, ca.key, server.crt/.key ({}), admin.crt/.key, sa.key", a.hosts.join(", "));
    if let Some(server_url) = &a.server {
        let path = a.dir.join("admin.kubeconfig");
        write_private(&path, &kubeconfig(server_url, ca.cert_pem(), &admin))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// A new CA in `dir` (refused when one is there), a replicas' server certificate for `hosts`
/// (`server.crt`/`.key`) and an admin client certificate (`admin.crt`/`.key`), the last two
/// valid for `validity`. Returns the CA and the admin's pair.
pub fn init_dir(dir: &Path, hosts: &[String], validity: Duration) -> anyhow::Result<(Ca, Issued)> {
    if dir.join("ca.crt").exists() || dir.join("ca.key").exists() {
        bail!(
            "{} already holds a CA; refusing to replace it (use `flotilla pki issue` for more certificates)",
            dir.display()
        );
    }
    let ca = new_ca(dir)?;
    let admin = issue_replicas_and_admin(&ca, dir, hosts, validity)?;
    service_account_key(dir)?;
    Ok((ca, admin))
}

/// The file name of the key replicas sign ServiceAccount tokens with.
pub const SERVICE_ACCOUNT_KEY: &str = "sa.key";

/// `dir/sa.key`, made (ECDSA P-256, mode 0600) unless it is there; its path.
pub fn service_account_key(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join(SERVICE_ACCOUNT_KEY);
    if !path.exists() {
        write_private(&path, &flotilla_pki::jwt::new_signing_key_pem()?)?;
    }
    Ok(path)
}

/// A new CA, saved in `dir` as ca.crt and ca.key.
pub fn new_ca(dir: &Path) -> anyhow::Result<Ca> {
    let ca = Ca::generate("flotilla-ca", CA_VALIDITY).context("generating the CA")?;
    ca.save(dir)?;
    Ok(ca)
}

/// The replicas' server certificate for `hosts` (`server.crt`/`.key`) and the admin's client
/// certificate (`admin.crt`/`.key`) in `dir`, signed by `ca`; returns the admin's pair.
pub fn issue_replicas_and_admin(ca: &Ca, dir: &Path, hosts: &[String], validity: Duration) -> anyhow::Result<Issued> {
    issue_replica(ca, dir, hosts, validity)?;
    issue_admin(ca, dir, validity)
}

/// The replicas' server certificate for `hosts` (`server.crt`/`.key` in `dir`, replaced).
pub fn issue_replica(ca: &Ca, dir: &Path, hosts: &[String], validity: Duration) -> anyhow::Result<()> {
    let server = ca.issue_server("flotilla-apiserver", &[REPLICAS_GROUP.to_string()], hosts, validity)?;
    server.save(dir, "server")?;
    Ok(())
}

/// The admin's client certificate (`admin.crt`/`.key` in `dir`).
pub fn issue_admin(ca: &Ca, dir: &Path, validity: Duration) -> anyhow::Result<Issued> {
    let admin = ca.issue_client(ADMIN_USER, &[ADMIN_GROUP.to_string()], validity)?;
    admin.save(dir, "admin")?;
    Ok(admin)
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

/// Write `text` to `path` readable by its owner only (it holds a private key or a token):
/// into a new temporary file next to it (never opened through a symlink, never keeping an
/// older file's mode), synced, then renamed over `path`, so a crash leaves the old file or
/// the new one, never half of one.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().with_context(|| format!("{} names no file", path.display()))?;
    let temp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    match std::fs::remove_file(&temp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", temp.display()));
        }
        _ => {}
    }
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_replace_symlinks_and_loose_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (target, link) = (dir.path().join("target"), dir.path().join("link"));
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_private(&link, "secret").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep", "the symlink's target is untouched");
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "secret");
        let loose = dir.path().join("loose");
        std::fs::write(&loose, "old").unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&loose, "new").unwrap();
        assert_eq!(std::fs::metadata(&loose).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
