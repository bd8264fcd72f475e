//! Leadership: the replica that is Raft leader runs the scheduler and the controllers.
//!
//! Each replica runs one [`Leadership`] loop that follows its Raft metrics. When the replica
//! leads, the loop starts every registered component with a fresh [`LeaderContext`]; when it
//! stops leading (or a new term begins), it cancels them at once and waits for them to end.
//!
//! Invariants:
//! - Components run only while this replica is leader *and* has heard from a quorum within
//!   one election timeout: openraft 0.9 does not step down a leader that is cut off, so the
//!   role alone could leave two replicas running controllers. With the check, at most one
//!   replica runs them except for the short window in which a cut-off leader has not yet
//!   noticed — and then fencing applies:
//! - every write a component makes goes through [`LeaderContext::client`], whose storage is
//!   fenced (`Storage::fenced`): proposed on this replica only, only while it leads, and a
//!   CAS on resourceVersion. A deposed leader's stale decision fails; it never applies.
//! - The `kube-system/flotilla-controllers` Lease names the replica that runs the
//!   components (`holderIdentity`) and is renewed while it does, so `kubectl get lease -n
//!   kube-system` shows where the controllers are.

use std::sync::Arc;
use std::time::Duration;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::encryption::Encryption;
use flotilla_apiserver::registry::allocator::ServiceRanges;
use flotilla_apiserver::storage::Storage;
use flotilla_apiserver::{ApiError, Registry};
use flotilla_store::StoreNode;
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::runtime::SharedInformers;

/// Namespace and name of the Lease that shows which replica runs the controllers.
pub const LEASE_NAMESPACE: &str = "kube-system";
pub const LEASE_NAME: &str = "flotilla-controllers";
/// How often the lease is renewed, and the duration it claims (informational: Raft, not
/// the lease, decides who leads).
const LEASE_RENEW: Duration = Duration::from_secs(2);
const LEASE_DURATION_SECONDS: i32 = 15;
/// How often the role is re-checked when Raft metrics do not change (the quorum-contact
/// age grows without a metrics update).
const ROLE_POLL: Duration = Duration::from_millis(100);
/// How long stopped components get to return before they are aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What a component gets when it starts.
#[derive(Clone)]
pub struct LeaderContext {
    /// Fenced in-process client: every write is proposed here only, while this replica leads.
    pub client: Client,
    /// The Raft term this leadership belongs to.
    pub term: u64,
    /// This replica's name.
    pub identity: String,
    /// Cancelled when leadership ends.
    pub cancel: CancellationToken,
    /// One informer per kind, shared by every component of this term (started on first use,
    /// stopped with `cancel`).
    pub informers: SharedInformers,
}

impl LeaderContext {
    /// The context of one term: `client` should be fenced (see [`Storage::fenced`]).
    pub fn new(client: Client, term: u64, identity: impl Into<String>, cancel: CancellationToken) -> Self {
        let informers = SharedInformers::new(client.clone(), cancel.clone());
        Self { client, term, identity: identity.into(), cancel, informers }
    }
}

/// A leader-only component: started with a context, runs until its token is cancelled.
pub type Component = Arc<dyn Fn(LeaderContext) -> BoxFuture<'static, ()> + Send + Sync>;

pub struct Leadership {
    node: Arc<StoreNode>,
    identity: String,
    ranges: ServiceRanges,
    encryption: Option<Arc<Encryption>>,
    /// Pods the components create get ServiceAccount tokens (the API's setting must match).
    service_account_tokens: bool,
    components: Vec<(String, Component)>,
}

/// Components of the current term.
struct Running {
    term: u64,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl Leadership {
    pub fn new(node: Arc<StoreNode>, identity: impl Into<String>, ranges: ServiceRanges) -> Self {
        let identity = identity.into();
        Self { node, identity, ranges, encryption: None, service_account_tokens: false, components: Vec::new() }
    }

    /// The keys that seal Secrets at rest, for the components' storage (the API's must match).
    pub fn with_encryption(mut self, encryption: Option<Arc<Encryption>>) -> Self {
        self.encryption = encryption;
        self
    }

    /// Whether pods the components create get ServiceAccount tokens (the API's must match).
    pub fn with_service_account_tokens(mut self, on: bool) -> Self {
        self.service_account_tokens = on;
        self
    }

    /// Register a component (started on every term this replica leads).
    pub fn with(mut self, name: impl Into<String>, component: Component) -> Self {
        self.components.push((name.into(), component));
        self
    }

    /// Follow this replica's role until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let mut metrics = self.node.raft().metrics();
        let mut running: Option<Running> = None;
        loop {
            let leading = self.leading_term();
            let current = running.as_ref().map(|r| r.term);
            if current.is_some() && current != leading {
                let stopped = running.take().expect("checked above");
                tracing::info!(term = stopped.term, "leadership lost; stopping controllers");
                stop(stopped).await;
            }
            if running.is_none() {
                if let Some(term) = leading {
                    tracing::info!(term, identity = %self.identity, "leading; starting controllers");
                    running = Some(self.start(term));
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                changed = metrics.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep(ROLE_POLL) => {}
            }
        }
        if let Some(r) = running {
            stop(r).await;
        }
    }

    /// The term this replica leads with a fresh quorum contact, if it does.
    fn leading_term(&self) -> Option<u64> {
        let m = self.node.raft().metrics().borrow().clone();
        let window = self.node.config().election_timeout.as_millis() as u64;
        let fresh = m.millis_since_quorum_ack.is_some_and(|ms| ms < window);
        (m.current_leader == Some(self.node.id()) && fresh).then_some(m.current_term)
    }

    fn start(&self, term: u64) -> Running {
        let storage = Storage::fenced(self.node.clone()).with_encryption(self.encryption.clone());
        let registry = Registry::with_ranges(storage, self.ranges.clone())
            .with_service_account_tokens(self.service_account_tokens);
        let cancel = CancellationToken::new();
        let ctx = LeaderContext::new(Client::new(registry), term, self.identity.clone(), cancel);
        let mut tasks = JoinSet::new();
        // Stopping waits for the shared informers too, so a new term never overlaps the last.
        let (informers, ended) = (ctx.informers.clone(), ctx.cancel.clone());
        tasks.spawn(async move {
            ended.cancelled().await;
            informers.stopped().await;
        });
        tasks.spawn(keep_lease(ctx.clone()));
        for (name, component) in &self.components {
            let fut = component(ctx.clone());
            let name = name.clone();
            tasks.spawn(async move {
                fut.await;
                tracing::debug!(component = %name, "stopped");
            });
        }
        Running { term, cancel: ctx.cancel, tasks }
    }
}

async fn stop(mut r: Running) {
    r.cancel.cancel();
    let drained = tokio::time::timeout(STOP_GRACE, async { while r.tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(term = r.term, "controllers did not stop in time; aborting them");
        r.tasks.abort_all();
        while r.tasks.join_next().await.is_some() {}
    }
}

/// Keep the controllers Lease naming this replica while it leads.
async fn keep_lease(ctx: LeaderContext) {
    loop {
        if let Err(e) = renew_lease(&ctx).await {
            tracing::debug!(error = %e, "controllers lease not renewed");
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = tokio::time::sleep(LEASE_RENEW) => {}
        }
    }
}

async fn renew_lease(ctx: &LeaderContext) -> Result<(), ApiError> {
    let leases = ctx.client.api::<Lease>(Some(LEASE_NAMESPACE));
    let now = MicroTime(jiff::Timestamp::now());
    let mut lease = match leases.get(LEASE_NAME).await {
        Ok(l) => l,
        Err(ApiError::NotFound(_)) => Lease {
            metadata: ObjectMeta { name: Some(LEASE_NAME.into()), ..Default::default() },
            spec: Some(LeaseSpec::default()),
        },
        Err(e) => return Err(e),
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(ctx.identity.as_str()) {
        spec.holder_identity = Some(ctx.identity.clone());
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
    spec.renew_time = Some(now);
    // A missing lease is created by the PUT (leases allow create-on-update).
    leases.update(LEASE_NAME, &lease).await.map(|_| ())
}
