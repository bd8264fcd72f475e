//! A container's `volumeMounts` as bind [`Mount`]s of host paths, with `subPath` and
//! `subPathExpr`.
//!
//! Invariants:
//! - A sub path stays inside its volume: it is relative without `..`, and after symlinks
//!   are resolved it still lies under the volume's real path (a symlink planted in a
//!   volume cannot expose the node's files).
//! - A missing sub path of a directory volume is created (0750), as the kubelet does.
//! - Content volumes (configMap, secret, downwardAPI, projected) and read-only claims are
//!   always mounted read-only, whatever the mount says.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Container;

use super::payload;
use crate::pods::env::expand::expand;
use crate::runtime::Mount;

/// A volume made into a node path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePath {
    pub path: PathBuf,
    /// Mounted read-only whatever the mount says.
    pub read_only: bool,
}

/// The mounts of `container`, given its pod's volumes by name and its resolved env (for
/// `subPathExpr`). `Err` is the reason shown to the user.
pub fn mounts(
    container: &Container,
    volumes: &BTreeMap<String, VolumePath>,
    env: &[(String, String)],
) -> Result<Vec<Mount>, String> {
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let volume = volumes
            .get(&m.name)
            .ok_or_else(|| format!("cannot find volume {:?} to mount into container {:?}", m.name, container.name))?;
        let sub = match (m.sub_path.as_deref(), m.sub_path_expr.as_deref()) {
            (Some(s), _) if !s.is_empty() => Some(s.to_string()),
            (_, Some(e)) if !e.is_empty() => {
                Some(expand(e, |n| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str())))
            }
            _ => None,
        };
        let host_path = match sub {
            Some(sub) => sub_path(&volume.path, &sub).map_err(|why| {
                format!(
                    "failed to prepare subPath for volumeMount {:?} of container {:?}: {why}",
                    m.name, container.name
                )
            })?,
            None => volume.path.clone(),
        };
        out.push(Mount {
            host_path,
            container_path: m.mount_path.clone(),
            read_only: volume.read_only || m.read_only.unwrap_or(false),
        });
    }
    Ok(out)
}

fn sub_path(volume: &std::path::Path, sub: &str) -> Result<PathBuf, String> {
    let relative = payload::checked(sub)?;
    let joined = volume.join(&relative);
    if fs::symlink_metadata(&joined).is_err() {
        fs::DirBuilder::new().recursive(true).mode(0o750).create(&joined).map_err(|e| e.to_string())?;
    }
    let real_volume = fs::canonicalize(volume).map_err(|e| format!("{}: {e}", volume.display()))?;
    let real = fs::canonicalize(&joined).map_err(|e| format!("{}: {e}", joined.display()))?;
    if !real.starts_with(&real_volume) {
        return Err(format!(
            "subpath {:?} not within volume path {:?}",
            real.display().to_string(),
            real_volume.display().to_string()
        ));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use k8s_openapi::api::core::v1::VolumeMount;

    use super::*;

    fn mount(name: &str, at: &str, sub: Option<&str>, expr: Option<&str>, ro: bool) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: at.into(),
            sub_path: sub.map(str::to_string),
            sub_path_expr: expr.map(str::to_string),
            read_only: Some(ro),
            ..VolumeMount::default()
        }
    }

    #[test]
    fn mounts_resolve_sub_paths_inside_their_volume_only() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        fs::create_dir_all(&data).unwrap();
        symlink("/etc", data.join("escape")).unwrap();
        let volumes = BTreeMap::from([
            ("data".to_string(), VolumePath { path: data.clone(), read_only: false }),
            ("cfg".to_string(), VolumePath { path: tmp.path().join("cfg"), read_only: true }),
        ]);
        let env = [("POD".to_string(), "web-0".to_string())];
        let c = |mounts: Vec<VolumeMount>| Container {
            name: "app".into(),
            volume_mounts: Some(mounts),
            ..Container::default()
        };
        let got = mounts(
            &c(vec![
                mount("data", "/data", None, None, false),
                mount("data", "/logs", Some("logs/app"), None, true),
                mount("data", "/mine", None, Some("per-pod/$(POD)"), false),
                mount("cfg", "/etc/cfg", None, None, false),
            ]),
            &volumes,
            &env,
        )
        .unwrap();
        let real = fs::canonicalize(&data).unwrap();
        let seen: Vec<(PathBuf, &str, bool)> =
            got.iter().map(|m| (m.host_path.clone(), m.container_path.as_str(), m.read_only)).collect();
        assert_eq!(
            seen,
            [
                (data.clone(), "/data", false),
                (real.join("logs/app"), "/logs", true),
                (real.join("per-pod/web-0"), "/mine", false),
                (tmp.path().join("cfg"), "/etc/cfg", true),
            ]
        );
        assert!(data.join("logs/app").is_dir(), "a missing sub path is created");

        let escape = mounts(&c(vec![mount("data", "/x", Some("escape"), None, false)]), &volumes, &env).unwrap_err();
        assert!(escape.contains("not within volume path"), "{escape}");
        let dotdot = mounts(&c(vec![mount("data", "/x", Some("../up"), None, false)]), &volumes, &env).unwrap_err();
        assert!(dotdot.contains("failed to prepare subPath"), "{dotdot}");
        let unknown = mounts(&c(vec![mount("nope", "/x", None, None, false)]), &volumes, &env).unwrap_err();
        assert_eq!(unknown, "cannot find volume \"nope\" to mount into container \"app\"");
    }
}
