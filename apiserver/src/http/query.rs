//! Query parameters of resource requests, parsed once into typed options.
//!
//! Unknown parameters are ignored, as upstream does; a malformed value of a known one is a
//! 400 naming the parameter.

use std::collections::HashMap;
use std::time::Duration;

use super::negotiate::FieldValidation;
use crate::error::{ApiError, ApiResult};
use crate::registry::{DeleteOptions, ListOptions, Propagation, WriteOptions};
use crate::selector::{FieldSelector, LabelSelector};
use crate::watch::WatchOptions;

/// The raw query, last value wins (repeated keys such as exec's `command` are read with
/// [`Query::all`]).
#[derive(Debug, Clone, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
    last: HashMap<String, String>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let last = pairs.iter().cloned().collect();
        Self { pairs, last }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.last.get(key).map(String::as_str)
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    pub fn flag(&self, key: &str) -> ApiResult<bool> {
        match self.get(key) {
            None | Some("") => Ok(false),
            Some("true" | "1" | "True") => Ok(true),
            Some("false" | "0" | "False") => Ok(false),
            Some(v) => Err(ApiError::BadRequest(format!("invalid value for {key}: {v:?} is not a boolean"))),
        }
    }

    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::BadRequest(format!("invalid value for {key}: {v:?} is not an integer"))),
        }
    }

    pub fn is_watch(&self) -> ApiResult<bool> {
        self.flag("watch")
    }

    fn selectors(&self) -> ApiResult<(Option<LabelSelector>, Option<FieldSelector>)> {
        let label = match self.get("labelSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(LabelSelector::parse(s).map_err(|e| ApiError::BadRequest(e.to_string()))?),
            None => None,
        };
        let field = match self.get("fieldSelector").filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(FieldSelector::parse(s).map_err(|e| ApiError::BadRequest(e.to_string()))?),
            None => None,
        };
        Ok((label, field))
    }

    pub fn list_options(&self) -> ApiResult<ListOptions> {
        let (label, field) = self.selectors()?;
        let limit = self.int("limit")?.unwrap_or(0).max(0);
        Ok(ListOptions {
            label,
            field,
            limit,
            continue_token: self.get("continue").filter(|c| !c.is_empty()).map(String::from),
            resource_version: self.get("resourceVersion").map(String::from),
            resource_version_match: self.get("resourceVersionMatch").map(String::from),
        })
    }

    pub fn watch_options(&self) -> ApiResult<WatchOptions> {
        let (label, field) = self.selectors()?;
        Ok(WatchOptions {
            resource_version: self.get("resourceVersion").map(String::from),
            label,
            field,
            bookmarks: self.flag("allowWatchBookmarks")?,
            bookmark_interval: None,
        })
    }

    /// `timeoutSeconds` of a watch (None: stay open).
    pub fn timeout(&self) -> ApiResult<Option<Duration>> {
        Ok(self.int("timeoutSeconds")?.filter(|s| *s > 0).map(|s| Duration::from_secs(s as u64)))
    }

    pub fn write_options(&self) -> ApiResult<WriteOptions> {
        Ok(WriteOptions {
            dry_run: self.dry_run()?,
            field_manager: self.get("fieldManager").map(String::from),
            create_denied: None,
            node: None,
        })
    }

    fn dry_run(&self) -> ApiResult<bool> {
        match self.all("dryRun").as_slice() {
            [] => Ok(false),
            values if values.iter().all(|v| *v == "All") => Ok(true),
            values => Err(ApiError::BadRequest(format!(
                "dryRun: Unsupported value: {:?}: supported values: \"All\"",
                values.join(",")
            ))),
        }
    }

    /// `fieldValidation` (upstream's default is Warn).
    pub fn field_validation(&self) -> ApiResult<FieldValidation> {
        match self.get("fieldValidation").unwrap_or("") {
            "Strict" => Ok(FieldValidation::Strict),
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            other => Err(ApiError::BadRequest(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }

    pub fn delete_options(&self) -> ApiResult<DeleteOptions> {
        let mut o = DeleteOptions { dry_run: self.dry_run()?, ..Default::default() };
        if let Some(p) = self.get("propagationPolicy").filter(|p| !p.is_empty()) {
            o.propagation = Some(Propagation::parse(p)?);
        }
        if self.get("orphanDependents").is_some_and(|v| !v.is_empty()) {
            let orphan = self.flag("orphanDependents")?;
            o.orphan_dependents = Some(orphan);
            if orphan {
                o.propagation = Some(Propagation::Orphan);
            }
        }
        o.grace_period_seconds = self.int("gracePeriodSeconds")?;
        o.precondition_uid = self.get("preconditions.uid").map(String::from);
        o.precondition_resource_version = self.get("preconditions.resourceVersion").map(String::from);
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_kubectl_sends() {
        let q = Query::parse(Some("limit=500&watch=true&resourceVersion=12&fieldValidation=Strict&dryRun=All"));
        assert!(q.is_watch().unwrap());
        assert_eq!(q.list_options().unwrap().limit, 500);
        assert_eq!(q.field_validation().unwrap(), FieldValidation::Strict);
        assert!(q.write_options().unwrap().dry_run);
        assert_eq!(q.watch_options().unwrap().resource_version.as_deref(), Some("12"));
    }

    #[test]
    fn malformed_values_are_bad_requests() {
        assert!(Query::parse(Some("limit=ten")).list_options().is_err());
        assert!(Query::parse(Some("watch=maybe")).is_watch().is_err());
        assert!(Query::parse(Some("dryRun=Some")).write_options().is_err());
        assert!(Query::parse(Some("propagationPolicy=Sideways")).delete_options().is_err());
    }

    #[test]
    fn repeated_keys_are_kept_in_order() {
        let q = Query::parse(Some("command=ls&command=-l"));
        assert_eq!(q.all("command"), vec!["ls", "-l"]);
    }
}
