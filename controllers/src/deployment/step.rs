//! One reconcile step of one Deployment over the ReplicaSets it claimed: the strategy,
//! revisions, history cleanup and status (see the parent module for the order and why).

use std::time::Duration;

use flotilla_apiserver::client::Api;
use flotilla_apiserver::{ApiError, ApiResult};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet};
use k8s_openapi::jiff::Timestamp;

use super::replicasets::{desired, revision, Writes, REVISION};
use super::rollout::{self, Counts};
use super::status::{self, Note};
use super::template;
use crate::runtime::{owner, Action};

/// Extra delay after a progress deadline before checking it, so the check falls after it
/// even with the one-second resolution of condition timestamps.
const DEADLINE_SLACK: Duration = Duration::from_secs(1);

/// Whether the strategy step may be followed by revision sync and cleanup.
enum Outcome {
    Proceed,
    /// A name collision was recorded in the status: retry with the new hash.
    Retry,
}

pub(super) struct Step<'a> {
    pub d: Deployment,
    /// Claimed ReplicaSets, oldest revision first.
    pub rss: Vec<ReplicaSet>,
    pub writes: Writes<'a>,
    pub deployments: Api<Deployment>,
    pub note: Option<Note>,
}

fn available(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0).min(desired(rs)).max(0)
}

fn counts(rs: &ReplicaSet) -> Counts {
    Counts { desired: desired(rs), available: available(rs) }
}

fn name_of(d: &Deployment) -> String {
    d.metadata.name.clone().unwrap_or_default()
}

impl Step<'_> {
    fn spec(&self) -> DeploymentSpec {
        self.d.spec.clone().unwrap_or_default()
    }

    fn replicas(&self) -> i32 {
        self.spec().replicas.unwrap_or(1)
    }

    fn recreate(&self) -> bool {
        self.spec().strategy.and_then(|s| s.type_).as_deref() == Some("Recreate")
    }

    /// `(maxSurge, maxUnavailable)`; Recreate allows neither.
    fn bounds(&self) -> (i32, i32) {
        if self.recreate() {
            return (0, 0);
        }
        let ru = self.spec().strategy.and_then(|s| s.rolling_update).unwrap_or_default();
        rollout::fenceposts(ru.max_surge.as_ref(), ru.max_unavailable.as_ref(), self.replicas())
    }

    /// The RS whose template equals the Deployment's (the newest, should there be several).
    fn new_index(&self) -> Option<usize> {
        let t = self.spec().template;
        self.rss
            .iter()
            .rposition(|rs| rs.spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|x| template::same(x, &t)))
    }

    fn olds(&self, new: Option<usize>) -> Vec<usize> {
        (0..self.rss.len()).filter(|i| Some(*i) != new).collect()
    }

    fn max_old_revision(&self, new: Option<usize>) -> i64 {
        self.olds(new).into_iter().map(|i| revision(&self.rss[i])).max().unwrap_or(0)
    }

    pub async fn run(mut self) -> ApiResult<Action> {
        if self.spec().paused != Some(true) {
            let outcome = if self.recreate() { self.recreate_step().await? } else { self.rolling_step().await? };
            if let Outcome::Retry = outcome {
                return Ok(Action::RequeueAfter(super::CACHE_LAG_RETRY));
            }
            self.sync_revision().await?;
            let new = self.new_index();
            let olds: Vec<&ReplicaSet> = self.olds(new).into_iter().map(|i| &self.rss[i]).collect();
            let limit = self.spec().revision_history_limit.unwrap_or(10).max(0) as usize;
            self.writes.cleanup(&olds, limit).await?;
        }
        self.write_status().await
    }

    async fn scale(&mut self, i: usize, replicas: i32) -> ApiResult<()> {
        self.rss[i] = self.writes.scale(&self.d, &self.rss[i], replicas).await?;
        Ok(())
    }

    /// Recreate: every old RS to 0, wait until their pods are gone, then the new RS.
    async fn recreate_step(&mut self) -> ApiResult<Outcome> {
        let new = self.new_index();
        let mut waiting = false;
        for i in self.olds(new) {
            if desired(&self.rss[i]) > 0 {
                self.scale(i, 0).await?;
            }
            waiting |= desired(&self.rss[i]) > 0 || self.rss[i].status.as_ref().is_some_and(|s| s.replicas > 0);
        }
        if waiting {
            return Ok(Outcome::Proceed);
        }
        let replicas = self.replicas();
        match new {
            None => return self.create_new(replicas).await,
            Some(i) if desired(&self.rss[i]) != replicas => self.scale(i, replicas).await?,
            Some(_) => {}
        }
        Ok(Outcome::Proceed)
    }

    /// RollingUpdate: grow the new RS within maxSurge, else shrink old RSs within
    /// maxUnavailable; one kind of move per reconcile, as upstream.
    async fn rolling_step(&mut self) -> ApiResult<Outcome> {
        let (max_surge, max_unavailable) = self.bounds();
        let replicas = self.replicas();
        let all: i32 = self.rss.iter().map(desired).sum();
        let Some(new) = self.new_index() else {
            return self.create_new(rollout::new_rs_replicas(replicas, max_surge, 0, all)).await;
        };
        let olds = self.olds(Some(new));
        let old_active = olds.iter().any(|i| desired(&self.rss[*i]) > 0);
        let current = desired(&self.rss[new]);
        let target = if old_active { rollout::new_rs_replicas(replicas, max_surge, current, all) } else { replicas };
        if target != current {
            self.scale(new, target).await?;
            return Ok(Outcome::Proceed);
        }
        let old_counts: Vec<Counts> = olds.iter().map(|i| counts(&self.rss[*i])).collect();
        let targets = rollout::old_rs_replicas(replicas, max_unavailable, counts(&self.rss[new]), &old_counts);
        for (i, t) in olds.into_iter().zip(targets) {
            if t != desired(&self.rss[i]) {
                self.scale(i, t).await?;
            }
        }
        Ok(Outcome::Proceed)
    }

    /// Create the new RS; on a name taken by another template, bump `collisionCount`.
    async fn create_new(&mut self, replicas: i32) -> ApiResult<Outcome> {
        let revision = self.max_old_revision(None) + 1;
        let err = match self.writes.create(&self.d, replicas, revision).await {
            Ok(rs) => {
                self.note = Some(Note::Created(rs.metadata.name.clone().unwrap_or_default()));
                self.rss.push(rs);
                return Ok(Outcome::Proceed);
            }
            Err(e) => e,
        };
        let ApiError::AlreadyExists(_) = err else { return Err(err) };
        let collisions = self.d.status.as_ref().and_then(|s| s.collision_count);
        let name = format!("{}-{}", name_of(&self.d), template::hash(&self.spec().template, collisions));
        let existing = self.writes.api.get(&name).await?;
        let ours = owner::is_controlled_by(&existing.metadata, &self.d.metadata);
        let template = existing.spec.as_ref().and_then(|s| s.template.as_ref());
        if !(ours && template.is_some_and(|t| template::same(t, &self.spec().template))) {
            tracing::info!(replicaset = %name, "name taken by another template; bumping collisionCount");
            let mut d = self.d.clone();
            let status = d.status.get_or_insert_with(Default::default);
            status.collision_count = Some(collisions.unwrap_or(0) + 1);
            self.d = self.deployments.update_status(&name_of(&d), &d).await?;
        }
        // Ours but not yet cached: the cache's catching up queues the Deployment again.
        Ok(Outcome::Retry)
    }

    /// The new RS's revision above every other; the Deployment's annotation equal to it.
    async fn sync_revision(&mut self) -> ApiResult<()> {
        let Some(i) = self.new_index() else { return Ok(()) };
        let want = self.max_old_revision(Some(i)) + 1;
        if revision(&self.rss[i]) < want {
            self.rss[i] = self.writes.set_revision(&self.d, &self.rss[i], want).await?;
            if self.note.is_none() {
                self.note = Some(Note::Found(self.rss[i].metadata.name.clone().unwrap_or_default()));
            }
        }
        let rev = revision(&self.rss[i]).to_string();
        if self.d.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)) != Some(&rev) {
            let mut d = self.d.clone();
            d.metadata.annotations.get_or_insert_with(Default::default).insert(REVISION.into(), rev);
            self.d = self.deployments.update(&name_of(&d), &d).await?;
        }
        Ok(())
    }

    async fn write_status(mut self) -> ApiResult<Action> {
        let new = self.new_index().map(|i| &self.rss[i]);
        let all: Vec<&ReplicaSet> = self.rss.iter().collect();
        let now = Timestamp::now();
        let status = status::compute(&self.d, new, &all, self.bounds().1, self.note.take(), now);
        if self.d.status.as_ref() != Some(&status) {
            self.d.status = Some(status);
            self.d = self.deployments.update_status(&name_of(&self.d), &self.d).await?;
        }
        let Some(at) = self.d.status.as_ref().and_then(|s| status::deadline(&self.d, s)) else {
            return Ok(Action::Done);
        };
        let left = Duration::try_from(at.duration_since(now)).unwrap_or_default();
        Ok(Action::RequeueAfter(left + DEADLINE_SLACK))
    }
}
