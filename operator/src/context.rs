//! What every reconcile shares: the client, settings, scraper, event recorder and metrics, and
//! what the operator remembers per Stream between reconciles.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use kube::Client;
use kube::runtime::events::Recorder;

use crate::build::Target;
use crate::config::OperatorConfig;
use crate::decide::StreamMemory;
use crate::metrics::{ConditionLabels, Metrics, RegionLabels, StreamLabels, TierLabels};
use crate::scrape::Scraper;

/// Shared by all reconciles.
pub struct Context {
    pub client: Client,
    pub cfg: OperatorConfig,
    pub scraper: Scraper,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    started: Instant,
    /// Planner seconds per wall second (1 in production; more for sped-up replays).
    pub(crate) speed: f64,
    memory: Mutex<HashMap<(String, String), StreamMemory>>,
    /// Metric label sets published per Stream, so stale ones can be removed.
    pub(crate) published: Mutex<HashMap<(String, String), Published>>,
    /// uids of deleted Streams, so a reconcile that was in flight at deletion does not
    /// publish their metrics again.
    deleted: Mutex<HashSet<String>>,
}

/// The gauges' label sets published for one Stream.
#[derive(Default)]
pub(crate) struct Published {
    pub tiers: Vec<TierLabels>,
    pub regions: Vec<RegionLabels>,
    pub conditions: Vec<ConditionLabels>,
    pub stream: Option<StreamLabels>,
}

/// Locks a mutex even if a panicking thread poisoned it (the data stays usable: it is a cache).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(target: &Target) -> (String, String) {
    (target.namespace.clone(), target.stream.clone())
}

impl Context {
    pub fn new(
        client: Client,
        cfg: OperatorConfig,
        recorder: Recorder,
        metrics: Arc<Metrics>,
    ) -> Self {
        Context {
            client,
            scraper: Scraper::new(cfg.scrape_timeout),
            cfg,
            recorder,
            metrics,
            started: Instant::now(),
            speed: 1.0,
            memory: Mutex::new(HashMap::new()),
            published: Mutex::new(HashMap::new()),
            deleted: Mutex::new(HashSet::new()),
        }
    }

    /// Runs the planner's clock `speed` times faster than the wall clock (requeues and measured
    /// ready times follow), for replaying a trace at `surge-load replay --speed`.
    pub fn with_speed(mut self, speed: f64) -> Self {
        self.speed = speed;
        self
    }

    /// A wait in planner time as wall time.
    pub(crate) fn wall(&self, planner: std::time::Duration) -> std::time::Duration {
        planner.div_f64(self.speed)
    }

    /// Drops what is remembered about a deleted Stream: its history, planner state and metrics.
    /// Best effort (a delete missed while the watch was down leaves them until restart).
    pub fn forget(&self, namespace: &str, name: &str, uid: &str) {
        lock(&self.deleted).insert(uid.to_string());
        self.forget_key(namespace, name);
    }

    pub(crate) fn forget_key(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        lock(&self.memory).remove(&key);
        if let Some(old) = lock(&self.published).remove(&key) {
            crate::report::unpublish(&self.metrics, &old, &Published::default());
        }
    }

    /// Whether the Stream with this uid was deleted.
    pub(crate) fn is_deleted(&self, uid: &str) -> bool {
        lock(&self.deleted).contains(uid)
    }

    /// What is remembered of `target`'s Stream (nothing, the first time).
    pub(crate) fn recall(&self, target: &Target) -> StreamMemory {
        lock(&self.memory)
            .get(&key(target))
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn remember(&self, target: &Target, memory: StreamMemory) {
        lock(&self.memory).insert(key(target), memory);
    }

    /// Seconds since the operator started, times the speed: the planner's clock.
    pub(crate) fn now_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * self.speed
    }
}
