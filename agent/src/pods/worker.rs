//! [`Worker`]: the I/O edge of one pod's sync — observe the runtime, ask [`PodSync`] for
//! steps, execute them, report status. One task per pod, so a slow runtime call for one
//! pod never delays another.
//!
//! Invariants:
//! - The worker always syncs against the newest Pod it was given (a `watch` channel keeps
//!   only the latest), and syncs again on a pod update, a runtime event, the end of a
//!   back-off, or [`Context::resync`], whichever comes first.
//! - Status goes through `pods/{name}/status` only when it differs from the status it
//!   builds on, as a compare-and-swap on resourceVersion (one re-read on conflict).
//!   Before any step that removes containers, the status is written first, so the final
//!   container states and phase are reported before they are lost.
//! - An unreachable control plane only delays status writes and the final delete: the
//!   containers keep running and the pod keeps being synced.
//! - The worker ends when the runtime holds nothing of the pod and the pod is gone from
//!   the API or this worker deleted it.
//! - Probes run inside this task: between syncs the worker starts the probe runs that are
//!   due ([`PodSync::due_probes`]) and polls them concurrently (at most one run per
//!   probe of each running container, so at most three per container); a result that
//!   changes readiness, `started` or asks for a kill triggers a sync at once.
//! - Steps run through [`hooks::apply`] (preStop before stops, postStart after starts),
//!   and every step's outcome is fed back to [`PodSync::applied`], so a container config
//!   error becomes a waiting reason with back-off instead of a failed sync.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams, Preconditions};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::probe::state::{Due, Kind, Outcome};
use super::probe::{action, hooks, run};
use super::status::{self, Input};
use super::sync::{Observed, Plan, PodSync, Step};
use super::Context;
use super::{effects, spec};
use crate::error::AgentError;

/// Observe-plan-execute rounds per sync before yielding (a bound against a step that
/// keeps "succeeding" without changing anything).
const MAX_ROUNDS: usize = 8;
/// Wait after a failed runtime step or status write before trying again.
const RETRY: Duration = Duration::from_secs(2);

/// Probe runs in flight (bounded: one per probe of each running container).
type Probing = FuturesUnordered<BoxFuture<'static, (Due, Outcome)>>;

/// How a sync ended.
enum Synced {
    /// Nothing more to do for this pod, ever.
    Done,
    /// Sync again at this time at the latest.
    Until(Instant),
}

pub struct Worker {
    ctx: Arc<Context>,
    uid: String,
    pod: watch::Receiver<Option<Arc<Pod>>>,
    wake: Arc<Notify>,
    sync: PodSync,
    /// The status last written and the resourceVersion the write produced.
    written: Option<(PodStatus, u64)>,
    /// The pod's IP as last observed, where network probes connect by default.
    sandbox_ip: Option<String>,
}

fn version(pod: &Pod) -> u64 {
    pod.metadata.resource_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl Worker {
    pub fn new(ctx: Arc<Context>, uid: String, pod: watch::Receiver<Option<Arc<Pod>>>, wake: Arc<Notify>) -> Self {
        let sync = PodSync::new(ctx.backoff_initial, ctx.backoff_max);
        Self { ctx, uid, pod, wake, sync, written: None, sandbox_ip: None }
    }

    /// Sync until the pod is done with or `cancel` fires; returns the pod uid.
    pub async fn run(mut self, cancel: CancellationToken) -> String {
        // Kept out of `self` (it is not `Sync`, and `&self` is held across awaits).
        let mut probing = Probing::new();
        loop {
            let pod = self.pod.borrow_and_update().clone();
            let until = match self.sync_once(pod.as_deref()).await {
                Synced::Done => return self.uid,
                Synced::Until(at) => at,
            };
            if !self.wait(pod.as_deref(), until, &mut probing, &cancel).await {
                return self.uid;
            }
        }
    }

    /// Run probes until `until`, a pod update, a wake-up or a probe result that matters;
    /// false when the worker must end.
    async fn wait(
        &mut self,
        pod: Option<&Pod>,
        until: Instant,
        probing: &mut Probing,
        cancel: &CancellationToken,
    ) -> bool {
        loop {
            self.start_probes(pod, probing);
            let next = self.sync.next_probe_at().map_or(until, |p| p.min(until));
            tokio::select! {
                _ = cancel.cancelled() => return false,
                changed = self.pod.changed() => return changed.is_ok(),
                _ = self.wake.notified() => return true,
                Some((due, outcome)) = probing.next(), if !probing.is_empty() => {
                    if self.on_probe(pod, &due, &outcome) {
                        return true;
                    }
                }
                _ = tokio::time::sleep_until(next) => if Instant::now() >= until { return true },
            }
        }
    }

    /// Start the probe runs that are due.
    fn start_probes(&mut self, pod: Option<&Pod>, probing: &mut Probing) {
        let Some(pod) = pod else { return };
        let pod_ip = hooks::pod_ip(&self.ctx, self.sandbox_ip.as_deref());
        for due in self.sync.due_probes(Instant::now()) {
            let container = spec::containers(pod).iter().find(|c| c.name == due.container);
            let action = match container.and_then(|c| Some((c, due.kind.of(c)?))) {
                Some((c, probe)) => action::of_probe(probe, c, &pod_ip),
                None => action::Action::Unsupported("the probe is gone from the pod spec".into()),
            };
            let runtime = self.ctx.runtime.clone();
            probing.push(Box::pin(async move {
                let outcome = run::run(runtime.as_ref(), &due.id, &action, due.timeout).await;
                (due, outcome)
            }));
        }
    }

    /// Feed a probe result to the sync core; true if the pod must be synced now.
    fn on_probe(&mut self, pod: Option<&Pod>, due: &Due, outcome: &Outcome) -> bool {
        let changed = self.sync.probe_result(&due.id, due.kind, outcome);
        let key = pod.map(spec::key).unwrap_or_else(|| self.uid.clone());
        let (container, probe) = (due.container.as_str(), due.kind.name());
        if matches!(outcome, Outcome::Failure(_)) {
            let labels = flotilla_metrics::ProbeLabels { probe: probe.to_string() };
            flotilla_metrics::agent().probe_failures.get_or_create(&labels).inc();
        }
        match outcome {
            Outcome::Success if changed => tracing::info!(pod = key, container, probe, "probe succeeded"),
            Outcome::Success => {}
            Outcome::Failure(why) if changed && due.kind != Kind::Readiness => {
                tracing::warn!(pod = key, container, probe, error = why, "probe failed; the container will be killed");
            }
            Outcome::Failure(why) => tracing::info!(pod = key, container, probe, error = why, "probe failed"),
            Outcome::Unknown(why) => tracing::warn!(pod = key, container, probe, error = why, "probe cannot run"),
        }
        changed
    }

    async fn sync_once(&mut self, pod: Option<&Pod>) -> Synced {
        let key = pod.map(spec::key).unwrap_or_else(|| self.uid.clone());
        'rounds: for _ in 0..MAX_ROUNDS {
            let observed = match self.observe(pod).await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(pod = key, error = %e, "cannot read the pod's containers");
                    return Synced::Until(Instant::now() + RETRY);
                }
            };
            self.sandbox_ip = observed.sandbox.as_ref().and_then(|s| s.ip.clone());
            let plan = self.sync.plan(pod, &observed, Instant::now());
            let reporting = plan.steps.is_empty() || plan.steps.iter().any(Step::removes_state);
            if let (Some(pod), true) = (pod, reporting) {
                if let Err(e) = self.report(pod, &observed, &plan).await {
                    tracing::warn!(pod = key, error = %e, "pod status update failed");
                    return Synced::Until(Instant::now() + RETRY);
                }
            }
            if plan.steps.is_empty() {
                if pod.is_none() && observed.is_empty() {
                    return Synced::Done;
                }
                // A settled pod's configMap/secret/downwardAPI/projected volumes follow
                // their sources (rate-limited inside the volume manager).
                if let Some(pod) = pod.filter(|p| !spec::is_terminating(p)) {
                    if let Err(e) = effects::refresh_volumes(&self.ctx, pod).await {
                        tracing::warn!(pod = key, error = %e, "volume refresh failed; retried on a later sync");
                    }
                }
                let resync = Instant::now() + self.ctx.resync;
                return Synced::Until(plan.wake_at.map_or(resync, |w| w.min(resync)));
            }
            for step in &plan.steps {
                let result = self.execute(pod, &observed, step).await;
                self.sync.applied(step, result.as_ref().map(|_| ()), Instant::now());
                match result {
                    Ok(true) => return Synced::Done,
                    Ok(false) => {}
                    Err(e @ AgentError::ContainerConfig { .. }) => {
                        tracing::warn!(pod = key, error = %e, "container config error; the container waits");
                        continue 'rounds;
                    }
                    Err(e) => {
                        tracing::warn!(pod = key, ?step, error = %e, "pod sync step failed");
                        return Synced::Until(Instant::now() + RETRY);
                    }
                }
            }
        }
        Synced::Until(Instant::now() + RETRY)
    }

    async fn observe(&self, pod: Option<&Pod>) -> Result<Observed, AgentError> {
        effects::observe(self.ctx.runtime.as_ref(), &self.uid, pod).await
    }

    /// Run one step; true when the Pod object was deleted (the worker is done).
    async fn execute(&mut self, pod: Option<&Pod>, observed: &Observed, step: &Step) -> Result<bool, AgentError> {
        match (step, pod) {
            (Step::DeletePod, Some(pod)) => self.delete(pod).await.map(|()| true),
            _ => hooks::apply(&self.ctx, pod, observed, step).await.map(|()| false),
        }
    }

    /// Delete the Pod for good: grace period 0, only if it is still this uid.
    async fn delete(&self, pod: &Pod) -> Result<(), AgentError> {
        let (ns, name) =
            (pod.metadata.namespace.as_deref().unwrap_or_default(), pod.metadata.name.as_deref().unwrap_or_default());
        let preconditions = Preconditions { uid: Some(self.uid.clone()), resource_version: None };
        let dp = &DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(preconditions),
            ..DeleteParams::default()
        };
        let result = self
            .ctx
            .pool
            .call(move |c| async move { kube::Api::<Pod>::namespaced(c, ns).delete(name, dp).await })
            .await;
        match result {
            Ok(_) => {
                tracing::info!(pod = spec::key(pod), "pod stopped and deleted");
                Ok(())
            }
            // Gone already, or a new pod of the same name: nothing of ours to delete.
            Err(e) if e.is_not_found() || e.is_conflict() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Write the pod's status if it changed.
    async fn report(&mut self, pod: &Pod, observed: &Observed, plan: &Plan) -> Result<(), AgentError> {
        let ours = self.written.as_ref().filter(|(_, v)| version(pod) <= *v);
        let base = ours.map(|(s, _)| s).or(pod.status.as_ref()).cloned();
        let Some(computed) = self.compute(pod, observed, plan, base.as_ref()) else { return Ok(()) };
        if base.as_ref() == Some(&computed) {
            return Ok(());
        }
        let at_version = ours.map_or(version(pod), |(_, v)| *v).max(version(pod));
        let written = match self.write(pod, &computed, at_version).await {
            Err(e) if e.is_conflict() => {
                let (ns, name) = (
                    pod.metadata.namespace.as_deref().unwrap_or_default(),
                    pod.metadata.name.as_deref().unwrap_or_default(),
                );
                let fresh = self
                    .ctx
                    .pool
                    .call(move |c| async move { kube::Api::<Pod>::namespaced(c, ns).get(name).await })
                    .await?;
                if spec::uid(&fresh) != self.uid {
                    return Ok(());
                }
                let Some(computed) = self.compute(&fresh, observed, plan, fresh.status.as_ref()) else { return Ok(()) };
                (self.write(&fresh, &computed, version(&fresh)).await?, computed)
            }
            other => (other?, computed),
        };
        // Remember what we computed, not the server's echo, so the next comparison is
        // like for like.
        self.written = Some((written.1, version(&written.0)));
        Ok(())
    }

    fn compute(&self, pod: &Pod, observed: &Observed, plan: &Plan, base: Option<&PodStatus>) -> Option<PodStatus> {
        let ctx = &self.ctx;
        let input = Input {
            pod,
            observed,
            plan,
            base,
            host_ip: &ctx.host_ip,
            runtime: ctx.runtime.name(),
            now: Timestamp::now(),
        };
        status::compute(&input)
    }

    async fn write(&self, pod: &Pod, status: &PodStatus, at_version: u64) -> Result<Pod, AgentError> {
        let mut body = pod.clone();
        body.metadata.resource_version = Some(at_version.to_string());
        body.status = Some(status.clone());
        let (ns, name) =
            (pod.metadata.namespace.as_deref().unwrap_or_default(), pod.metadata.name.as_deref().unwrap_or_default());
        let (pp, body) = (&PostParams::default(), &body);
        self.ctx
            .pool
            .call(move |c| async move { kube::Api::<Pod>::namespaced(c, ns).replace_status(name, pp, body).await })
            .await
    }
}
