//! The files of the volumes whose content comes from the API — configMap, secret,
//! downwardAPI and projected — computed purely from the fetched objects.
//!
//! Invariants:
//! - Every path is relative and stays inside the volume (no `..` component, no absolute
//!   path), checked here again although the API validates it: the writer trusts it.
//! - A missing object or key fails unless the source is `optional`; an optional missing
//!   object gives no files (an empty volume), like upstream.
//! - Modes: `items[].mode`, else the volume's `defaultMode`, else 0644 for every kind.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume, VolumeProjection};

use crate::pods::env::field::{self, NodeFacts};
use crate::pods::env::objects::Objects;
use crate::pods::tokens::TokenRef;

/// Upstream's default mode of configMap, secret, downwardAPI and projected files.
pub const DEFAULT_MODE: u32 = 0o644;

/// One file of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// A volume's files by relative path.
pub type Payload = BTreeMap<PathBuf, File>;

/// The kind directory of a content volume (`volumes/<kind>/<name>`), None for other kinds.
pub fn kind(volume: &Volume) -> Option<&'static str> {
    if volume.config_map.is_some() {
        Some("configmap")
    } else if volume.secret.is_some() {
        Some("secret")
    } else if volume.downward_api.is_some() {
        Some("downward-api")
    } else if volume.projected.is_some() {
        Some("projected")
    } else {
        None
    }
}

/// The files of content volume `volume` of `pod`; `Err` is upstream's reason (None for a
/// volume of another kind).
pub fn of(pod: &Pod, volume: &Volume, objects: &Objects, facts: &NodeFacts) -> Option<Result<Payload, String>> {
    let mode = |m: Option<i32>| m.map_or(DEFAULT_MODE, |m| m as u32 & 0o7777);
    let mut files = Payload::new();
    let result = if let Some(v) = &volume.config_map {
        let cm = config_map(objects, &v.name, v.optional);
        cm.and_then(|cm| add_config_map(&mut files, cm, v.items.as_deref(), mode(v.default_mode), v.optional))
    } else if let Some(v) = &volume.secret {
        let name = v.secret_name.clone().unwrap_or_default();
        let secret = secret(objects, &name, v.optional);
        secret.and_then(|s| add_secret(&mut files, s, v.items.as_deref(), mode(v.default_mode), v.optional))
    } else if let Some(v) = &volume.downward_api {
        add_downward(&mut files, pod, v.items.iter().flatten(), mode(v.default_mode), facts)
    } else if let Some(v) = &volume.projected {
        let default = mode(v.default_mode);
        v.sources.iter().flatten().try_for_each(|s| add_projection(&mut files, pod, s, default, objects, facts))
    } else {
        return None;
    };
    Some(result.map(|()| files))
}

fn config_map<'a>(objects: &'a Objects, name: &str, optional: Option<bool>) -> Result<Option<&'a ConfigMap>, String> {
    match objects.config_maps.get(name).and_then(Option::as_ref) {
        Some(cm) => Ok(Some(cm)),
        None if optional == Some(true) => Ok(None),
        None => Err(format!("configmap {name:?} not found")),
    }
}

fn secret<'a>(objects: &'a Objects, name: &str, optional: Option<bool>) -> Result<Option<&'a Secret>, String> {
    match objects.secrets.get(name).and_then(Option::as_ref) {
        Some(s) => Ok(Some(s)),
        None if optional == Some(true) => Ok(None),
        None => Err(format!("secret {name:?} not found")),
    }
}

fn add_config_map(
    files: &mut Payload,
    cm: Option<&ConfigMap>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    optional: Option<bool>,
) -> Result<(), String> {
    let Some(cm) = cm else { return Ok(()) };
    let mut data: BTreeMap<&str, &[u8]> = cm.data.iter().flatten().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
    data.extend(cm.binary_data.iter().flatten().map(|(k, v)| (k.as_str(), v.0.as_slice())));
    add_keys(files, &data, items, mode, optional, "configmap references non-existent config key")
}

fn add_secret(
    files: &mut Payload,
    secret: Option<&Secret>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    optional: Option<bool>,
) -> Result<(), String> {
    let Some(secret) = secret else { return Ok(()) };
    let data: BTreeMap<&str, &[u8]> = secret.data.iter().flatten().map(|(k, v)| (k.as_str(), v.0.as_slice())).collect();
    add_keys(files, &data, items, mode, optional, "references non-existent secret key")
}

/// Every key as a file of its name, or only `items`, each at its path.
fn add_keys(
    files: &mut Payload,
    data: &BTreeMap<&str, &[u8]>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    optional: Option<bool>,
    missing: &str,
) -> Result<(), String> {
    let Some(items) = items.filter(|i| !i.is_empty()) else {
        for (key, value) in data {
            insert(files, key, value.to_vec(), mode)?;
        }
        return Ok(());
    };
    for item in items {
        match data.get(item.key.as_str()) {
            Some(value) => insert(files, &item.path, value.to_vec(), item.mode.map_or(mode, |m| m as u32 & 0o7777))?,
            None if optional == Some(true) => {}
            None => return Err(format!("{missing}: {}", item.key)),
        }
    }
    Ok(())
}

fn add_downward<'a>(
    files: &mut Payload,
    pod: &Pod,
    items: impl Iterator<Item = &'a DownwardAPIVolumeFile>,
    mode: u32,
    facts: &NodeFacts,
) -> Result<(), String> {
    for item in items {
        let value = match (&item.field_ref, &item.resource_field_ref) {
            (Some(f), _) => field::pod_field(pod, f, facts)?,
            (None, Some(r)) => field::resource(pod, None, r, facts)?,
            (None, None) => {
                return Err(format!("downwardAPI item {} has neither fieldRef nor resourceFieldRef", item.path))
            }
        };
        insert(files, &item.path, value.into_bytes(), item.mode.map_or(mode, |m| m as u32 & 0o7777))?;
    }
    Ok(())
}

fn add_projection(
    files: &mut Payload,
    pod: &Pod,
    source: &VolumeProjection,
    mode: u32,
    objects: &Objects,
    facts: &NodeFacts,
) -> Result<(), String> {
    if let Some(p) = &source.config_map {
        let cm = config_map(objects, &p.name, p.optional)?;
        add_config_map(files, cm, p.items.as_deref(), mode, p.optional)?;
    }
    if let Some(p) = &source.secret {
        let s = secret(objects, &p.name, p.optional)?;
        add_secret(files, s, p.items.as_deref(), mode, p.optional)?;
    }
    if let Some(p) = &source.downward_api {
        add_downward(files, pod, p.items.iter().flatten(), mode, facts)?;
    }
    if let Some(t) = &source.service_account_token {
        let token = objects.tokens.get(&TokenRef::of(t));
        let token = token.ok_or_else(|| format!("no service account token for {:?} yet", t.path))?;
        insert(files, &t.path, token.clone().into_bytes(), mode)?;
    }
    Ok(())
}

fn insert(files: &mut Payload, path: &str, data: Vec<u8>, mode: u32) -> Result<(), String> {
    files.insert(checked(path)?, File { data, mode });
    Ok(())
}

/// `path` if it is relative, normal and does not start with `..` (the writer's names).
pub fn checked(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    let normal = p.components().all(|c| matches!(c, Component::Normal(_)));
    if path.is_empty() || !normal || path.starts_with("..") {
        return Err(format!("invalid path {path:?}: must be relative, without '..', and not start with '..'"));
    }
    Ok(p.to_path_buf())
}

#[cfg(test)]
mod tests;
