//! Images already in containerd's store: finding one by the name a pod gives, reading its
//! config, and the snapshot its root file system is made from.
//!
//! Invariants:
//! - No registry is ever contacted: an image is found under the name as given, with
//!   `:latest` added, or in its normalized `docker.io/...` form ([`candidate_names`]), or
//!   it is missing.
//! - A container's root file system is a snapshot prepared on top of the image's
//!   unpacked top layer. The unpacked layer's chain id is read from the label containerd
//!   puts on the image config when it unpacks (`containerd.io/gc.ref.snapshot.<snapshotter>`),
//!   so an image imported but not unpacked for our snapshotter is reported, not guessed.
//! - Manifest and config blobs are read whole, up to [`MAX_BLOB`] bytes.
//! - What runs follows Kubernetes: `command` replaces the image's entrypoint (and drops
//!   its cmd), `args` replaces the cmd; env entries of the pod override the image's.

use futures::StreamExt;
use k8s_openapi::serde_json::{self, Value};

use containerd_client::services::v1::{GetImageRequest, InfoRequest, ReadContentRequest};

use super::client::{self, Api};
use super::oci::ProcessInput;
use crate::runtime::{ContainerSpec, RuntimeError};

/// Largest manifest, index or config read (real ones are a few KiB).
const MAX_BLOB: usize = 4 << 20;
/// `PATH` of a container whose image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const INDEX_TYPES: &[&str] =
    &["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];

/// The parts of an image config a container uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

/// An image found in the store.
#[derive(Debug, Clone)]
pub struct Image {
    /// The name it is stored under.
    pub name: String,
    /// Its target's digest (the manifest or index), reported as the image id.
    pub digest: String,
    pub config: ImageConfig,
    /// The chain id of its unpacked top layer: the parent of a container's snapshot.
    pub top_layer: String,
}

/// The names `image` may be stored under, most literal first.
pub fn candidate_names(image: &str) -> Vec<String> {
    let last = image.rsplit('/').next().unwrap_or(image);
    let tagged = if last.contains(':') || image.contains('@') { image.to_string() } else { format!("{image}:latest") };
    let first = tagged.split('/').next().unwrap_or_default();
    let has_domain = tagged.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let normalized = match (has_domain, tagged.contains('/')) {
        (true, _) => tagged.clone(),
        (false, true) => format!("docker.io/{tagged}"),
        (false, false) => format!("docker.io/library/{tagged}"),
    };
    let mut names = vec![image.to_string()];
    for n in [tagged, normalized] {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// `image`'s target digest if it is in the store.
pub async fn digest(api: &Api, image: &str) -> Result<Option<(String, String)>, RuntimeError> {
    for name in candidate_names(image) {
        let got = client::optional(api.images().get(api.req(GetImageRequest { name: name.clone() })).await)
            .map_err(|s| client::failed("image", &name, s))?;
        if let Some(target) = got.and_then(|r| r.into_inner().image).and_then(|i| i.target) {
            return Ok(Some((name, target.digest)));
        }
    }
    Ok(None)
}

/// Find `image` and read what a container needs from it.
pub async fn resolve(api: &Api, image: &str, snapshotter: &str) -> Result<Image, RuntimeError> {
    let (name, digest) = self::digest(api, image).await?.ok_or_else(|| RuntimeError::ImageMissing(image.into()))?;
    let mut manifest = json_blob(api, &digest).await?;
    if manifest.get("manifests").is_some() || is_index(&manifest) {
        let chosen = platform_manifest(&manifest)
            .ok_or_else(|| RuntimeError::Failed(format!("image {name} has no linux/amd64 manifest")))?;
        manifest = json_blob(api, &chosen).await?;
    }
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .ok_or_else(|| RuntimeError::Failed(format!("image {name}: manifest without config")))?
        .to_string();
    let config = parse_config(&json_blob(api, &config_digest).await?);
    let info = api.content().info(api.req(InfoRequest { digest: config_digest.clone() })).await;
    let labels = info.map_err(|s| client::failed("image config", &config_digest, s))?.into_inner().info;
    let label = format!("containerd.io/gc.ref.snapshot.{snapshotter}");
    let top_layer = labels
        .and_then(|i| i.labels.get(&label).cloned())
        .ok_or_else(|| RuntimeError::Failed(format!("image {name} is not unpacked for snapshotter {snapshotter}")))?;
    Ok(Image { name, digest, config, top_layer })
}

fn is_index(v: &Value) -> bool {
    v["mediaType"].as_str().is_some_and(|t| INDEX_TYPES.contains(&t))
}

/// The digest of an index's linux/amd64 manifest.
pub fn platform_manifest(index: &Value) -> Option<String> {
    let manifests = index["manifests"].as_array()?;
    let fits = |m: &&Value| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == "amd64";
    manifests.iter().find(fits).and_then(|m| m["digest"].as_str()).map(str::to_string)
}

/// The container-relevant part of an image config blob (missing parts are empty).
pub fn parse_config(v: &Value) -> ImageConfig {
    let c = &v["config"];
    let strings = |key: &str| -> Vec<String> {
        c[key].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    ImageConfig {
        env: strings("Env"),
        entrypoint: strings("Entrypoint"),
        cmd: strings("Cmd"),
        working_dir: c["WorkingDir"].as_str().unwrap_or_default().to_string(),
        user: c["User"].as_str().unwrap_or_default().to_string(),
    }
}

async fn json_blob(api: &Api, digest: &str) -> Result<Value, RuntimeError> {
    let request = ReadContentRequest { digest: digest.to_string(), offset: 0, size: 0 };
    let mut stream =
        api.content().read(api.req(request)).await.map_err(|s| client::failed("content", digest, s))?.into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.map_err(|s| client::failed("content", digest, s))?.data);
        if bytes.len() > MAX_BLOB {
            return Err(RuntimeError::Failed(format!("blob {digest} is larger than {MAX_BLOB} bytes")));
        }
    }
    serde_json::from_slice(&bytes).map_err(|e| RuntimeError::Failed(format!("blob {digest} is not JSON: {e}")))
}

/// The argv of `spec` over `image` (Kubernetes' command/args rules); empty if neither says.
pub fn argv(spec: &ContainerSpec, image: &ImageConfig) -> Vec<String> {
    match (spec.command.is_empty(), spec.args.is_empty()) {
        (false, _) => spec.command.iter().chain(&spec.args).cloned().collect(),
        (true, false) => image.entrypoint.iter().chain(&spec.args).cloned().collect(),
        (true, true) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    }
}

/// The image's env with the pod's entries overriding (and added after) it.
pub fn env(spec_env: &[(String, String)], image: &ImageConfig) -> Vec<String> {
    let overridden = |entry: &String| {
        let key = entry.split('=').next().unwrap_or_default();
        spec_env.iter().any(|(k, _)| k == key)
    };
    let mut env: Vec<String> = image.env.iter().filter(|e| !overridden(e)).cloned().collect();
    env.extend(spec_env.iter().map(|(k, v)| format!("{k}={v}")));
    env
}

/// Uid and gid from `runAsUser`/`runAsGroup`, else the image's numeric `User` (`uid[:gid]`).
pub fn user(run_as_user: Option<i64>, run_as_group: Option<i64>, image_user: &str) -> Result<(u32, u32), RuntimeError> {
    let bad = |what: &str| RuntimeError::Failed(format!("{what} is not a usable numeric id"));
    let id = |v: i64, what: &str| u32::try_from(v).map_err(|_| bad(what));
    let (mut uid, mut gid) = (0, 0);
    if !image_user.is_empty() && run_as_user.is_none() {
        let (u, g) = image_user.split_once(':').unwrap_or((image_user, ""));
        uid = u.parse().map_err(|_| bad(&format!("image user {image_user:?} (names need an /etc/passwd lookup)")))?;
        gid = if g.is_empty() { 0 } else { g.parse().map_err(|_| bad(&format!("image group {g:?}")))? };
    }
    if let Some(u) = run_as_user {
        uid = id(u, "runAsUser")?;
    }
    if let Some(g) = run_as_group {
        gid = id(g, "runAsGroup")?;
    }
    Ok((uid, gid))
}

/// The process of `spec` over `image` in a pod with `hostname`.
pub fn process(spec: &ContainerSpec, image: &ImageConfig, hostname: &str) -> Result<ProcessInput, RuntimeError> {
    let args = argv(spec, image);
    if args.is_empty() {
        return Err(RuntimeError::Failed(format!("container {}: no command and the image has none", spec.name)));
    }
    let (uid, gid) = user(spec.security.run_as_user, spec.security.run_as_group, &image.user)?;
    let mut env = env(&spec.env, image);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    env.push(format!("HOSTNAME={hostname}"));
    let cwd = spec.working_dir.clone().filter(|d| !d.is_empty());
    let cwd = cwd.unwrap_or_else(|| if image.working_dir.is_empty() { "/".into() } else { image.working_dir.clone() });
    Ok(ProcessInput { args, env, cwd, uid, gid, terminal: spec.tty, privileged: spec.security.privileged })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::serde_json::json;

    use super::*;

    #[test]
    fn names_are_tried_as_given_then_tagged_then_normalized() {
        assert_eq!(candidate_names("busybox"), ["busybox", "busybox:latest", "docker.io/library/busybox:latest"]);
        assert_eq!(
            candidate_names("flotilla/busybox:latest"),
            ["flotilla/busybox:latest", "docker.io/flotilla/busybox:latest"]
        );
        assert_eq!(candidate_names("localhost:5000/app"), ["localhost:5000/app", "localhost:5000/app:latest"]);
        assert_eq!(candidate_names("docker.io/library/busybox:1"), ["docker.io/library/busybox:1"]);
    }

    #[test]
    fn the_amd64_manifest_is_chosen_from_an_index() {
        let index = json!({ "manifests": [
            { "digest": "sha256:arm", "platform": { "os": "linux", "architecture": "arm64" } },
            { "digest": "sha256:amd", "platform": { "os": "linux", "architecture": "amd64" } },
        ]});
        assert_eq!(platform_manifest(&index).as_deref(), Some("sha256:amd"));
    }

    #[test]
    fn command_replaces_entrypoint_and_cmd_and_args_replace_cmd() {
        let image = parse_config(&json!({ "config": {
            "Entrypoint": ["/entry"], "Cmd": ["serve"], "Env": ["PATH=/bin", "A=image"], "WorkingDir": "/w"
        }}));
        assert_eq!(image.working_dir, "/w");
        let mut spec = ContainerSpec::default();
        assert_eq!(argv(&spec, &image), ["/entry", "serve"]);
        spec.args = vec!["debug".into()];
        assert_eq!(argv(&spec, &image), ["/entry", "debug"]);
        spec.command = vec!["/bin/sh".into()];
        spec.args = vec![];
        assert_eq!(argv(&spec, &image), ["/bin/sh"]);
        assert_eq!(env(&[("A".into(), "pod".into())], &image), ["PATH=/bin", "A=pod"]);
    }

    #[test]
    fn users_come_from_the_security_context_before_the_image() {
        assert_eq!(user(None, None, "").unwrap(), (0, 0));
        assert_eq!(user(None, None, "1000:50").unwrap(), (1000, 50));
        assert_eq!(user(Some(7), Some(8), "1000:50").unwrap(), (7, 8));
        assert!(user(None, None, "nobody").is_err());
        assert!(user(Some(-1), None, "").is_err());
    }
}
