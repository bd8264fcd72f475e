//! `flotilla token create`: a bootstrap token, with which agents join (`flotilla agent
//! --token`) and get their node certificate. As `kubeadm token create`, it is a Secret
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`, made through
//! the Kubernetes API with the caller's kubeconfig (`$KUBECONFIG` or `--kubeconfig`), and the
//! token `<id>.<secret>` is printed. `kubectl -n kube-system get secrets` lists the tokens;
//! deleting a Secret revokes its token (certificates already issued stay valid).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use rand::Rng;

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a bootstrap token and print it.
    Create(CreateArgs),
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// The kubeconfig to use [default: $KUBECONFIG, then ~/.kube/config].
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// How long the token may be used (e.g. 24h, 30m; 0: until its Secret is deleted).
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    ttl: Duration,
    /// A note kept with the token (its Secret's `description`).
    #[arg(long, default_value = "flotilla agent join token")]
    description: String,
}

/// The alphabet of token ids and secrets.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    match args.command {
        TokenCommand::Create(a) => create(a).await,
    }
}

async fn create(a: CreateArgs) -> anyhow::Result<()> {
    let client = client(a.kubeconfig.as_ref()).await?;
    let token = generate();
    Api::<Secret>::namespaced(client, "kube-system")
        .create(&PostParams::default(), &secret_object(&token, &a.description, a.ttl))
        .await
        .context("creating the token's Secret in kube-system")?;
    println!("{token}");
    Ok(())
}

/// A new token, `<id>.<secret>`.
pub fn generate() -> String {
    format!("{}.{}", random(6), random(16))
}

/// The Secret of `token` (from [`generate`]), as upstream's bootstrap token authenticator
/// reads it.
pub fn secret_object(token: &str, description: &str, ttl: Duration) -> Secret {
    let (id, secret) = token.split_once('.').unwrap_or((token, ""));
    let mut data = std::collections::BTreeMap::from([
        ("token-id".to_string(), id.to_string()),
        ("token-secret".to_string(), secret.to_string()),
        ("usage-bootstrap-authentication".to_string(), "true".to_string()),
        ("description".to_string(), description.to_string()),
    ]);
    if !ttl.is_zero() {
        let at = jiff::Timestamp::now().as_second().saturating_add(ttl.as_secs() as i64);
        let at = jiff::Timestamp::from_second(at).unwrap_or(jiff::Timestamp::MAX);
        data.insert("expiration".into(), at.to_string());
    }
    Secret {
        metadata: ObjectMeta { name: Some(format!("bootstrap-token-{id}")), ..Default::default() },
        type_: Some("bootstrap.kubernetes.io/token".into()),
        string_data: Some(data),
        ..Default::default()
    }
}

async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file =
                kube::config::Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &Default::default()).await?
        }
        None => kube::Config::infer().await.context("no kubeconfig (set KUBECONFIG or pass --kubeconfig)")?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// `len` random characters of `[a-z0-9]`.
pub(crate) fn random(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    crate::bench_api::parse_duration(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_what_the_authenticator_reads() {
        let s = secret_object("abcdef.0123456789abcdef", "d", Duration::from_secs(60));
        assert_eq!(s.metadata.name.as_deref(), Some("bootstrap-token-abcdef"));
        assert_eq!(s.type_.as_deref(), Some("bootstrap.kubernetes.io/token"));
        let data = s.string_data.unwrap();
        assert_eq!(data["usage-bootstrap-authentication"], "true");
        let expiration: jiff::Timestamp = data["expiration"].parse().expect("RFC 3339");
        assert!((expiration.as_second() - jiff::Timestamp::now().as_second() - 60).abs() <= 1);
        assert_eq!(data["token-secret"], "0123456789abcdef");
        let forever = secret_object("abcdef.0123456789abcdef", "d", Duration::ZERO);
        assert!(!forever.string_data.unwrap().contains_key("expiration"));
        let token = generate();
        let (id, secret) = token.split_once('.').expect("id.secret");
        assert!(id.len() == 6 && secret.len() == 16);
        assert!(token.bytes().all(|b| b == b'.' || ALPHABET.contains(&b)));
    }
}
