//! The fleet: planned relay Deployments run as `surge-relay` processes on this machine. IO.
//!
//! [`Fleet::apply`] plays the API server, ReplicaSets and kubelet at once: each Deployment's
//! `spec.replicas` relays run, each on its own loopback address ([`super::addresses`]) with
//! the container's args and env rewritten for it ([`super::rewrite`]). A relay counts as
//! Ready once `ready_delay` has passed since it started (scheduling and image pull) and its
//! `/readyz` answers 200 (polled in the background). A scale-down picks its victims as a
//! ReplicaSet does: not Ready first, then the lowest pod-deletion cost, then the newest; each
//! gets SIGTERM (after the deregistration delay, below), drains (`--shutdown-grace`) and gets
//! SIGKILL after `drain_grace`. A relay
//! that exits without being asked is replaced after a backoff and counted in `restarts`.
//! [`Fleet::shutdown`] stops every relay it started, by pid, and waits for them.
//!
//! Services: each relay gets `--hosts-file`, which the fleet rewrites whenever relays come,
//! go or change readiness ([`super::hosts_file`]), so Service names resolve as cluster DNS
//! would; each tier's (non-headless) Service gets a stand-in ([`super::service_proxy`]) that
//! forwards connections to its Ready relays. A relay told to stop leaves both at once and gets
//! its SIGTERM `deregistration_delay` later (a preStop pause: locators drop it from their view
//! when its name stops resolving to it, before it stops accepting).
//!
//! Not emulated: rolling updates (a changed pod template only applies to relays started
//! afterwards). The operator keeps pod templates unchanged while it scales (reflector levels
//! are laid out for `maxEdges` from the start, see `tree::plan_tiers`), so a crowd plays the
//! same here and on a cluster; a spec change is where they differ.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Service};
use tokio::task::JoinHandle;

use super::addresses::{AddressBook, relay_name};
use super::config::{FleetConfig, FleetError};
use super::hosts_file;
use super::process::{RelayProcess, accepts, readyz};
use super::replicaset::{Candidate, restart_backoff, victims};
use super::rewrite::{self, Endpoint, Me, RewriteError, is_headless, service_key};
use super::service_proxy::{backends, port_map};
use super::stand_ins::{Apart, StandInSpec, StandIns};
use super::state_dir::{RelayRecord, StateDir, unix_ms_now};
use super::status::{
    ApplyReport, DeploymentStatus, FleetStatus, RelayFailure, RelayStatus, ServiceStatus,
};
use crate::labels::{LABEL_REGION, TierKind, tier_from_labels};

/// Relay processes matching planned Deployments. Cheap to share behind an `Arc`; dropping it
/// without [`Fleet::shutdown`] kills the relays (SIGKILL, no drain).
pub struct Fleet {
    shared: Arc<Shared>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    cfg: FleetConfig,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    book: AddressBook,
    tiers: BTreeMap<String, Tier>,
    services: Vec<Service>,
    relays: BTreeMap<String, Relay>,
    /// The last serial given per Deployment name, kept when a Deployment goes away, so a
    /// name is never given twice (a relay of it may still be draining).
    serials: BTreeMap<String, u64>,
    /// Pod-deletion costs by relay name, as the last applies set them.
    costs: BTreeMap<String, String>,
    /// Stand-ins of the tiers' Services, by [`service_key`]: the table [`Self::host`] serves.
    stand_ins: BTreeMap<String, StandInSpec>,
    host: StandIns,
    /// Where relay records go, when the fleet is adoptable.
    records: Option<StateDir>,
    /// A first apply has said which Deployments are planned (until then, relays adopted
    /// from a previous run belong to no planned Deployment and must not be stopped).
    applied: bool,
    /// Each hosts file's text as last written (one, or one per region with parent links).
    hosts_written: BTreeMap<PathBuf, String>,
    shut_down: bool,
}

/// A planned Deployment.
struct Tier {
    namespace: String,
    region: String,
    kind: TierKind,
    pod_labels: BTreeMap<String, String>,
    container: Container,
    replicas: u32,
    /// Its Service's [`service_key`].
    service: String,
    /// Position in the last apply.
    order: usize,
    restarts: u32,
    crashes_in_a_row: u32,
    not_before: Option<Instant>,
    last_failure: Option<RelayFailure>,
    waiting: Option<String>,
}

struct Relay {
    deployment: String,
    namespace: String,
    region: String,
    kind: TierKind,
    labels: BTreeMap<String, String>,
    address: Ipv4Addr,
    rtmp: SocketAddr,
    http: SocketAddr,
    /// Where `/readyz` answers: the admin address, else the HTTP one.
    probe: SocketAddr,
    process: RelayProcess,
    started: Instant,
    started_unix_ms: u64,
    /// Start order within its Deployment (the number in its name).
    serial: u64,
    ready: bool,
    ready_after: Option<Duration>,
    /// When SIGTERM is (or was) sent, and whether SIGKILL followed.
    stop: Option<(Instant, bool)>,
    /// SIGTERM was sent (it waits `deregistration_delay` after the stop).
    signalled: bool,
    args: Vec<String>,
}

impl Fleet {
    /// A fleet with the default settings ([`FleetConfig::new`]); call inside a Tokio runtime.
    pub fn new(
        relay_bin: PathBuf,
        log_dir: PathBuf,
        ready_delay: Duration,
        drain_grace: Duration,
    ) -> Result<Fleet, FleetError> {
        Fleet::with_config(FleetConfig::new(
            relay_bin,
            log_dir,
            ready_delay,
            drain_grace,
        ))
    }

    pub fn with_config(cfg: FleetConfig) -> Result<Fleet, FleetError> {
        if !cfg.relay_bin.is_file() {
            return Err(FleetError::MissingBinary(cfg.relay_bin.clone()));
        }
        std::fs::create_dir_all(&cfg.log_dir).map_err(|source| FleetError::LogDir {
            path: cfg.log_dir.clone(),
            source,
        })?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| FleetError::NoRuntime)?;
        let mut state = State {
            book: AddressBook::new(cfg.first_region_octet),
            ..State::default()
        };
        if let Some(adoptable) = &cfg.adoptable {
            let dir = StateDir::new(adoptable.state_dir.clone());
            dir.take_ownership().map_err(|owner| FleetError::Owned {
                pid: owner.pid,
                dir: dir.root.clone(),
            })?;
            let (apart, adopted) = Apart::start_or_adopt(
                &adoptable.operator_bin,
                dir.clone(),
                &adoptable.stand_ins_log,
            )
            .map_err(FleetError::StandInsProcess)?;
            if adopted {
                tracing::info!(
                    pid = apart.pid(),
                    stand_ins = apart.table().len(),
                    "adopted the Service stand-ins' process of a previous run"
                );
            }
            state.stand_ins = apart
                .table()
                .iter()
                .map(|s| (s.service.clone(), s.clone()))
                .collect();
            state.host = StandIns::Apart(apart);
            state.adopt(&cfg, &dir);
            state.records = Some(dir);
        }
        let shared = Arc::new(Shared {
            cfg,
            state: Mutex::new(state),
        });
        let supervisor = runtime.spawn(supervise(Arc::clone(&shared)));
        Ok(Fleet {
            shared,
            supervisor: Mutex::new(Some(supervisor)),
        })
    }

    pub fn config(&self) -> &FleetConfig {
        &self.shared.cfg
    }

    /// Makes the running relays match `objects` (each tier's Service and Deployment, origin
    /// first: a relay is started once the Services it names have relays) plus
    /// `extra_services` (e.g. headless peers Services). `deletion_costs` are `(relay, cost)`
    /// updates, as `decide` gives them. Relays of Deployments not in `objects` are stopped.
    /// Waits until the new relays listen (or fail, which the report says).
    pub async fn apply(
        &self,
        objects: &[(Service, Deployment)],
        extra_services: &[Service],
        deletion_costs: &[(String, String)],
    ) -> Result<ApplyReport, FleetError> {
        let planned = objects
            .iter()
            .enumerate()
            .map(|(order, (s, d))| planned_tier(s, d, order))
            .collect::<Result<Vec<_>, _>>()?;
        let (started, stopping, removed) = {
            let mut state = self.shared.lock();
            if state.shut_down {
                return Err(FleetError::ShutDown);
            }
            state.services = objects
                .iter()
                .map(|(s, _)| s.clone())
                .chain(extra_services.iter().cloned())
                .collect();
            state.costs.extend(deletion_costs.iter().cloned());
            let names: Vec<String> = planned.iter().map(|(name, _)| name.clone()).collect();
            let removed: Vec<String> = state
                .tiers
                .keys()
                .filter(|name| !names.contains(name))
                .cloned()
                .collect();
            state.tiers.retain(|name, _| names.contains(name));
            for (name, tier) in planned {
                match state.tiers.get_mut(&name) {
                    Some(known) => {
                        known.replicas = tier.replicas;
                        known.order = tier.order;
                        known.container = tier.container;
                        known.pod_labels = tier.pod_labels;
                        known.service = tier.service;
                    }
                    None => {
                        state.tiers.insert(name, tier);
                    }
                }
            }
            state.applied = true;
            state.stand_ins(objects)?;
            let (started, stopping) = state.converge(&self.shared.cfg, Instant::now());
            (started, stopping, removed)
        };
        let failures = self.wait_listening(&started).await;
        let started = started
            .into_iter()
            .filter(|name| !failures.iter().any(|f| &f.relay == name))
            .collect();
        Ok(ApplyReport {
            started,
            stopping,
            removed,
            failures,
        })
    }

    /// Waits until each relay of `names` accepts on its HTTP port; those that exit first or
    /// never do are failures.
    async fn wait_listening(&self, names: &[String]) -> Vec<RelayFailure> {
        let cfg = &self.shared.cfg;
        let deadline = Instant::now() + cfg.startup_timeout;
        let mut failures = Vec::new();
        for name in names {
            loop {
                let http = {
                    let mut state = self.shared.lock();
                    state.reap(cfg, Instant::now());
                    match state.relays.get(name) {
                        Some(relay) => relay.http,
                        None => {
                            let failure = state
                                .tiers
                                .values()
                                .find_map(|t| t.last_failure.clone().filter(|f| &f.relay == name));
                            failures.extend(failure);
                            break;
                        }
                    }
                };
                if accepts(http, Duration::from_millis(200)).await {
                    break;
                }
                if Instant::now() >= deadline {
                    let deployment = self
                        .shared
                        .lock()
                        .relays
                        .get(name)
                        .map(|r| r.deployment.clone());
                    failures.push(RelayFailure {
                        relay: name.clone(),
                        deployment: deployment.unwrap_or_default(),
                        reason: format!("not listening on {http} after {:?}", cfg.startup_timeout),
                    });
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        failures
    }

    /// What runs now, per Deployment.
    pub fn observe(&self) -> FleetStatus {
        let mut state = self.shared.lock();
        state.reap(&self.shared.cfg, Instant::now());
        state.status(Instant::now())
    }

    /// Stops every relay: SIGTERM, SIGKILL after the drain grace, and waits until all have
    /// exited. Later applies are refused. Returns the pids it stopped.
    pub async fn shutdown(&self) -> Vec<u32> {
        if let Some(supervisor) = self.take_supervisor() {
            supervisor.abort();
        }
        let (relays, mut host, records) = {
            let mut state = self.shared.lock();
            state.shut_down = true;
            (
                std::mem::take(&mut state.relays),
                std::mem::take(&mut state.host),
                state.records.clone(),
            )
        };
        let mut processes: Vec<RelayProcess> = relays.into_values().map(|r| r.process).collect();
        let pids = processes.iter().map(RelayProcess::pid).collect();
        for p in &mut processes {
            p.terminate();
        }
        let deadline = Instant::now() + self.shared.cfg.drain_grace;
        while Instant::now() < deadline {
            processes.retain_mut(|p| p.try_wait().is_none());
            if processes.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for p in &mut processes {
            p.kill();
            p.wait().await;
        }
        // Last, so relays draining through a Service keep their connections to the end.
        host.stop().await;
        if let Some(dir) = records {
            dir.clear();
        }
        pids
    }

    fn take_supervisor(&self) -> Option<JoinHandle<()>> {
        self.supervisor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if let Some(supervisor) = self.take_supervisor() {
            supervisor.abort();
        }
        let mut state = self.shared.lock();
        state.shut_down = true;
        state.host.kill_now();
        if let Some(dir) = &state.records {
            dir.clear();
        }
        let mut relays: Vec<Relay> = std::mem::take(&mut state.relays).into_values().collect();
        for r in &mut relays {
            r.process.kill();
        }
        // Reap them if they go quickly; kill_on_drop covers the rest.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !relays.is_empty() && Instant::now() < deadline {
            relays.retain_mut(|r| r.process.try_wait().is_none());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not keep the relays from being stopped.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Notices exits, replaces relays and probes readiness until aborted.
async fn supervise(shared: Arc<Shared>) {
    let cfg = &shared.cfg;
    loop {
        tokio::time::sleep(cfg.poll_interval).await;
        let probes: Vec<(String, SocketAddr)> = {
            let mut state = shared.lock();
            if state.shut_down {
                return;
            }
            let now = Instant::now();
            state.reap(cfg, now);
            state.converge(cfg, now);
            state
                .relays
                .iter()
                .filter(|(_, r)| r.stop.is_none() && now >= r.started + cfg.ready_delay)
                .map(|(name, r)| (name.clone(), r.probe))
                .collect()
        };
        let timeout = cfg.poll_interval.min(Duration::from_secs(2));
        let results = futures::future::join_all(
            probes
                .into_iter()
                .map(|(name, http)| async move { (name, readyz(http, timeout).await) }),
        )
        .await;
        let mut state = shared.lock();
        let now = Instant::now();
        for (name, ready) in results {
            state.set_ready(&name, ready, now);
        }
        state.publish(cfg);
    }
}

/// The parts of a Deployment the fleet runs, as a new [`Tier`] named like it; `s` is its
/// Service.
fn planned_tier(s: &Service, d: &Deployment, order: usize) -> Result<(String, Tier), FleetError> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let unrunnable = |why: &str| FleetError::Unrunnable {
        name: name.clone(),
        why: why.to_string(),
    };
    if name.is_empty() {
        return Err(unrunnable("no name"));
    }
    let spec = d.spec.as_ref().ok_or_else(|| unrunnable("no spec"))?;
    let pod_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let kind = tier_from_labels(&pod_labels).ok_or_else(|| unrunnable("no tier labels"))?;
    let region = pod_labels
        .get(LABEL_REGION)
        .cloned()
        .ok_or_else(|| unrunnable("no region label"))?;
    let container = spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.containers.first().cloned())
        .ok_or_else(|| unrunnable("no container"))?;
    let replicas = u32::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
    let tier = Tier {
        namespace: d
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        region,
        kind,
        pod_labels,
        container,
        replicas,
        service: service_key(s),
        order,
        restarts: 0,
        crashes_in_a_row: 0,
        not_before: None,
        last_failure: None,
        waiting: None,
    };
    Ok((name, tier))
}

/// Why a relay was not started.
enum NotStarted {
    /// Not now (a Service it names has no relay yet): try again later, not a failure.
    Waiting(String),
    Failed(String),
}

impl State {
    /// Notices exited relays: a stopped one is gone; any other crashed and is counted.
    /// Draining relays past the grace get SIGKILL.
    fn reap(&mut self, cfg: &FleetConfig, now: Instant) {
        let mut exited = Vec::new();
        for (name, relay) in &mut self.relays {
            if let Some(status) = relay.process.try_wait() {
                exited.push((name.clone(), status));
            } else if let Some((at, _)) = relay.stop
                && !relay.signalled
                && now >= at
            {
                relay.process.terminate();
                relay.signalled = true;
            } else if let Some((since, killed @ false)) = &mut relay.stop
                && relay.signalled
                && now >= *since + cfg.drain_grace
            {
                relay.process.kill();
                *killed = true;
            }
        }
        for (name, status) in exited {
            let Some(relay) = self.relays.remove(&name) else {
                continue;
            };
            self.book.release(relay.address);
            self.costs.remove(&name);
            if let Some(dir) = &self.records {
                dir.remove_relay(&name);
            }
            if relay.stop.is_some() {
                tracing::info!(relay = %name, %status, "relay stopped");
                continue;
            }
            let said = relay
                .process
                .last_log_line()
                .unwrap_or_else(|| "(no output)".to_string());
            let age = now.saturating_duration_since(relay.started);
            let failure = RelayFailure {
                relay: name.clone(),
                deployment: relay.deployment.clone(),
                reason: format!(
                    "exited ({status}) {:.1} s after start: {said}",
                    age.as_secs_f64()
                ),
            };
            tracing::warn!(%failure, "relay exited");
            if let Some(tier) = self.tiers.get_mut(&relay.deployment) {
                tier.restarts += 1;
                tier.crashes_in_a_row += 1;
                tier.not_before =
                    Some(now + restart_backoff(cfg.restart_backoff, tier.crashes_in_a_row));
                tier.last_failure = Some(failure);
            }
        }
        self.publish(cfg);
    }

    /// Starts and stops relays so every planned Deployment has its replicas: returns the
    /// relays started and those told to stop.
    fn converge(&mut self, cfg: &FleetConfig, now: Instant) -> (Vec<String>, Vec<String>) {
        let (mut started, mut stopping) = (Vec::new(), Vec::new());
        if self.shut_down {
            return (started, stopping);
        }
        // New stand-ins and Services are in the file before a relay that names them starts.
        self.publish(cfg);
        // Relays of Deployments no longer planned.
        let orphans: Vec<String> = self
            .relays
            .iter()
            .filter(|(_, r)| {
                self.applied && r.stop.is_none() && !self.tiers.contains_key(&r.deployment)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in orphans {
            self.stop(cfg, &name, now);
            stopping.push(name);
        }
        let mut order: Vec<(usize, String)> = self
            .tiers
            .iter()
            .map(|(name, t)| (t.order, name.clone()))
            .collect();
        order.sort();
        for (_, deployment) in order {
            let Some(tier) = self.tiers.get(&deployment) else {
                continue;
            };
            let replicas = tier.replicas as usize;
            let active: Vec<&String> = self
                .relays
                .iter()
                .filter(|(_, r)| r.deployment == deployment && r.stop.is_none())
                .map(|(name, _)| name)
                .collect();
            if active.len() > replicas {
                // As a ReplicaSet: not Ready first, then the lowest deletion cost, then the newest.
                let candidates: Vec<Candidate> = active
                    .iter()
                    .map(|name| Candidate {
                        name: (*name).clone(),
                        ready: self.relays[*name].ready,
                        deletion_cost: self.costs.get(*name).cloned(),
                        serial: self.relays[*name].serial,
                    })
                    .collect();
                let victims = victims(&candidates, active.len() - replicas);
                for name in victims {
                    self.stop(cfg, &name, now);
                    stopping.push(name);
                }
                continue;
            }
            let missing = replicas - active.len();
            if missing == 0 || tier.not_before.is_some_and(|t| now < t) {
                continue;
            }
            for _ in 0..missing {
                match self.start(cfg, &deployment, now) {
                    Ok(name) => started.push(name),
                    Err(NotStarted::Waiting(why)) => {
                        if let Some(t) = self.tiers.get_mut(&deployment) {
                            t.waiting = Some(why);
                        }
                        break;
                    }
                    Err(NotStarted::Failed(reason)) => {
                        let failure = RelayFailure {
                            relay: relay_name(&deployment, self.last_serial(&deployment) + 1),
                            deployment: deployment.clone(),
                            reason,
                        };
                        tracing::warn!(%failure, "relay not started");
                        if let Some(t) = self.tiers.get_mut(&deployment) {
                            t.crashes_in_a_row += 1;
                            t.not_before = Some(
                                now + restart_backoff(cfg.restart_backoff, t.crashes_in_a_row),
                            );
                            t.last_failure = Some(failure);
                        }
                        break;
                    }
                }
            }
        }
        self.publish(cfg);
        (started, stopping)
    }

    /// Gives each planned tier's Service a stand-in (a headless one needs none) and closes
    /// those of Services no longer planned.
    fn stand_ins(&mut self, objects: &[(Service, Deployment)]) -> Result<(), FleetError> {
        let wanted: Vec<&Tier> = self
            .tiers
            .values()
            .filter(|t| {
                objects
                    .iter()
                    .any(|(s, _)| service_key(s) == t.service && !is_headless(s))
            })
            .collect();
        let keep: Vec<String> = wanted.iter().map(|t| t.service.clone()).collect();
        self.stand_ins.retain(|key, _| keep.contains(key));
        let mut fresh = Vec::new();
        for tier in wanted {
            if self.stand_ins.contains_key(&tier.service) {
                continue;
            }
            let Some((service, _)) = objects.iter().find(|(s, _)| service_key(s) == tier.service)
            else {
                continue;
            };
            fresh.push((
                tier.service.clone(),
                tier.region.clone(),
                tier.kind,
                port_map(service, &tier.container),
            ));
        }
        for (key, region, kind, ports) in fresh {
            let address =
                self.book
                    .service_address(&region, kind)
                    .map_err(|e| FleetError::Unrunnable {
                        name: key.clone(),
                        why: e.to_string(),
                    })?;
            let spec = StandInSpec {
                service: key.clone(),
                address,
                ports,
                backends: Vec::new(),
            };
            self.stand_ins.insert(key, spec);
        }
        let table: Vec<StandInSpec> = self.stand_ins.values().cloned().collect();
        let failed = self.host.set(&table);
        for f in &failed {
            self.stand_ins.remove(&f.service);
        }
        if let Some(f) = failed.into_iter().next() {
            return Err(FleetError::StandIn {
                service: f.service,
                address: f.address,
                source: f.error,
            });
        }
        Ok(())
    }

    /// Every relay as the Services see it.
    fn endpoints(&self) -> Vec<Endpoint<'_>> {
        self.relays
            .values()
            .map(|r| Endpoint {
                namespace: &r.namespace,
                labels: &r.labels,
                address: r.address,
                ready: r.ready,
                terminating: r.stop.is_some(),
            })
            .collect()
    }

    /// Points the stand-ins at the Ready relays and rewrites the hosts file if it changed.
    /// Not before the first apply: until then the Services are not known, and what a
    /// previous run left (the stand-ins' table, the hosts files) is still right.
    fn publish(&mut self, cfg: &FleetConfig) {
        if !self.applied {
            return;
        }
        let endpoints = self.endpoints();
        let behind: Vec<(String, Vec<Ipv4Addr>)> = self
            .stand_ins
            .keys()
            .map(|key| {
                let relays = self
                    .services
                    .iter()
                    .find(|s| &service_key(s) == key)
                    .map(|s| backends(s, &endpoints))
                    .unwrap_or_default();
                (key.clone(), relays)
            })
            .collect();
        drop(endpoints);
        for (key, relays) in behind {
            if let Some(spec) = self.stand_ins.get_mut(&key) {
                spec.backends = relays;
            }
        }
        let table: Vec<StandInSpec> = self.stand_ins.values().cloned().collect();
        for f in self.host.set(&table) {
            tracing::warn!(service = %f.service, address = %f.address, error = %f.error, "stand-in cannot listen");
        }
        let endpoints = self.endpoints();
        let stand_ins: BTreeMap<String, Ipv4Addr> = self
            .stand_ins
            .iter()
            .map(|(k, p)| (k.clone(), p.address))
            .collect();
        let entries =
            hosts_file::entries(&self.services, &endpoints, &stand_ins, &cfg.cluster_domain);
        let mut files = vec![(cfg.hosts_file.clone(), hosts_file::render(&entries))];
        if cfg.parent_links {
            for (region, parent) in self.parent_links(cfg) {
                let mut own = entries.clone();
                for (name, address) in parent {
                    own.insert(name, vec![address]);
                }
                files.push((cfg.region_hosts_file(&region), hosts_file::render(&own)));
            }
        }
        for (path, text) in files {
            if self.hosts_written.get(&path) == Some(&text) {
                continue;
            }
            match hosts_file::write_atomically(&path, &text) {
                Ok(()) => {
                    self.hosts_written.insert(path, text);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "hosts file not written")
                }
            }
        }
    }

    /// Per region outside the origin's: the origin Services' names and the address they
    /// resolve to there, `127.<region>.0.0` ([`FleetConfig::parent_links`]).
    fn parent_links(&mut self, cfg: &FleetConfig) -> Vec<(String, Vec<(String, Ipv4Addr)>)> {
        let origins: Vec<(String, String)> = self
            .tiers
            .values()
            .filter(|t| t.kind == TierKind::Origin)
            .filter_map(|t| {
                let service = self.services.iter().find(|s| service_key(s) == t.service)?;
                Some((
                    t.region.clone(),
                    hosts_file::dns_name(service, &cfg.cluster_domain),
                ))
            })
            .collect();
        let regions: BTreeSet<String> = self
            .tiers
            .values()
            .map(|t| t.region.clone())
            .filter(|r| origins.iter().all(|(o, _)| o != r))
            .collect();
        let mut out = Vec::new();
        for region in regions {
            let Ok(address) = self.book.service_address(&region, TierKind::Origin) else {
                continue;
            };
            let names = origins.iter().map(|(_, n)| (n.clone(), address)).collect();
            out.push((region, names));
        }
        out
    }

    /// The hosts file `tier`'s relays read.
    fn hosts_file_of(&self, cfg: &FleetConfig, tier: &Tier) -> PathBuf {
        let origin_region = self
            .tiers
            .values()
            .any(|t| t.kind == TierKind::Origin && t.region == tier.region);
        if cfg.parent_links && !origin_region && tier.kind != TierKind::Origin {
            cfg.region_hosts_file(&tier.region)
        } else {
            cfg.hosts_file.clone()
        }
    }

    /// Starts one more relay of `deployment`.
    fn start(
        &mut self,
        cfg: &FleetConfig,
        deployment: &str,
        now: Instant,
    ) -> Result<String, NotStarted> {
        let tier = self
            .tiers
            .get(deployment)
            .ok_or_else(|| NotStarted::Failed("not planned".to_string()))?;
        let (region, kind) = (tier.region.clone(), tier.kind);
        let address = self
            .book
            .allocate(&region, kind)
            .map_err(|e| NotStarted::Failed(e.to_string()))?;
        let serial = self.last_serial(deployment) + 1;
        let name = relay_name(deployment, serial);
        let launched = {
            let me = Me {
                name: &name,
                namespace: &tier.namespace,
                address,
            };
            let endpoints: Vec<Endpoint<'_>> = self
                .relays
                .values()
                .map(|r| Endpoint {
                    namespace: &r.namespace,
                    labels: &r.labels,
                    address: r.address,
                    ready: r.ready,
                    terminating: r.stop.is_some(),
                })
                .chain(std::iter::once(Endpoint {
                    namespace: &tier.namespace,
                    labels: &tier.pod_labels,
                    address,
                    ready: false,
                    terminating: false,
                }))
                .collect();
            let world = rewrite::Fleet {
                services: &self.services,
                endpoints: &endpoints,
            };
            rewrite::launch(&tier.container, &me, &world)
        };
        let launch = match launched {
            Ok(l) => l,
            Err(e) => {
                self.book.release(address);
                return Err(match e {
                    RewriteError::NoEndpoints(_) => NotStarted::Waiting(e.to_string()),
                    other => NotStarted::Failed(other.to_string()),
                });
            }
        };
        let mut args = launch.args;
        let rtmp = listen_address(&mut args, "--rtmp-listen", address, 1935);
        let http = listen_address(&mut args, "--http-listen", address, 8080);
        let probe = flag_address(&args, "--admin-listen").unwrap_or(http);
        let hosts = self
            .tiers
            .get(deployment)
            .map_or_else(|| cfg.hosts_file.clone(), |t| self.hosts_file_of(cfg, t));
        args.push("--hosts-file".to_string());
        args.push(hosts.display().to_string());
        let log = cfg.log_dir.join(format!("{name}.log"));
        let process = match RelayProcess::spawn(&cfg.relay_bin, &args, &launch.env, &log) {
            Ok(p) => p,
            Err(e) => {
                self.book.release(address);
                return Err(NotStarted::Failed(format!(
                    "cannot start {}: {e}",
                    cfg.relay_bin.display()
                )));
            }
        };
        tracing::info!(relay = %name, %address, pid = process.pid(), "relay started");
        let tier = self
            .tiers
            .get_mut(deployment)
            .ok_or_else(|| NotStarted::Failed("not planned".to_string()))?;
        tier.waiting = None;
        let relay = Relay {
            deployment: deployment.to_string(),
            namespace: tier.namespace.clone(),
            region,
            kind,
            labels: tier.pod_labels.clone(),
            address,
            rtmp,
            http,
            probe,
            process,
            started: now,
            started_unix_ms: unix_ms_now(),
            serial,
            ready: false,
            ready_after: None,
            stop: None,
            signalled: false,
            args,
        };
        self.serials.insert(deployment.to_string(), serial);
        self.relays.insert(name.clone(), relay);
        self.record(&name);
        Ok(name)
    }

    /// Takes the relay out of the stand-ins and the hosts file at once (it is no longer
    /// Ready), then SIGTERM after `deregistration_delay` (see [`FleetConfig`]): it drains.
    fn stop(&mut self, cfg: &FleetConfig, name: &str, now: Instant) {
        let Some(relay) = self.relays.get_mut(name) else {
            return;
        };
        if relay.stop.is_some() {
            return;
        }
        tracing::info!(relay = %name, "relay stopping");
        relay.stop = Some((now + cfg.deregistration_delay, false));
        relay.ready = false;
        self.record(name);
        self.publish(cfg);
        if let Some(relay) = self.relays.get_mut(name)
            && cfg.deregistration_delay.is_zero()
        {
            relay.process.terminate();
            relay.signalled = true;
        }
    }

    /// Writes `name`'s record, when the fleet keeps them.
    fn record(&self, name: &str) {
        let (Some(dir), Some(r)) = (&self.records, self.relays.get(name)) else {
            return;
        };
        let record = RelayRecord {
            name: name.to_string(),
            deployment: r.deployment.clone(),
            namespace: r.namespace.clone(),
            region: r.region.clone(),
            labels: r.labels.clone(),
            address: r.address,
            rtmp: r.rtmp,
            http: r.http,
            probe: r.probe,
            serial: r.serial,
            process: r.process.id(),
            started_unix_ms: r.started_unix_ms,
            ready_after_ms: r
                .ready_after
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            stopping: r.stop.is_some(),
            args: r.args.clone(),
        };
        if let Err(e) = dir.write_relay(&record) {
            tracing::warn!(relay = %name, error = %e, "relay record not written");
        }
    }

    /// Takes in the relays a previous run recorded in `dir` that still run, as they are
    /// (Ready as they were, a stopping one stopping); the records of those gone are removed.
    fn adopt(&mut self, cfg: &FleetConfig, dir: &StateDir) {
        let (mut records, unreadable) = dir.relays();
        for (path, why) in unreadable {
            tracing::warn!(file = %path.display(), %why, "relay record not understood; removed");
            let _ = std::fs::remove_file(path);
        }
        // By address, so regions are numbered in their order.
        records.sort_by_key(|r| r.address);
        let (now, now_ms) = (Instant::now(), unix_ms_now());
        for r in records {
            let log = cfg.log_dir.join(format!("{}.log", r.name));
            let kind = tier_from_labels(&r.labels);
            let Some((process, kind)) = RelayProcess::adopt(r.process, log).zip(kind) else {
                tracing::info!(relay = %r.name, pid = r.process.pid, "relay of a previous run is gone");
                dir.remove_relay(&r.name);
                continue;
            };
            if let Err(e) = self.book.claim(&r.region, r.address) {
                let mut process = process;
                tracing::warn!(relay = %r.name, error = %e, "relay of a previous run not adopted; stopping it");
                process.terminate();
                dir.remove_relay(&r.name);
                continue;
            }
            let age = Duration::from_millis(now_ms.saturating_sub(r.started_unix_ms));
            tracing::info!(
                relay = %r.name,
                pid = r.process.pid,
                address = %r.address,
                age_s = age.as_secs(),
                ready = r.ready_after_ms.is_some(),
                stopping = r.stopping,
                "adopted a relay of a previous run"
            );
            let serial = self.serials.entry(r.deployment.clone()).or_insert(0);
            *serial = (*serial).max(r.serial);
            let relay = Relay {
                deployment: r.deployment,
                namespace: r.namespace,
                region: r.region,
                kind,
                labels: r.labels,
                address: r.address,
                rtmp: r.rtmp,
                http: r.http,
                probe: r.probe,
                process,
                started: now.checked_sub(age).unwrap_or(now),
                started_unix_ms: r.started_unix_ms,
                serial: r.serial,
                // As it was: the first probe corrects it.
                ready: r.ready_after_ms.is_some() && !r.stopping,
                ready_after: r.ready_after_ms.map(Duration::from_millis),
                // A relay told to stop gets its SIGTERM (again) and its drain.
                stop: r.stopping.then_some((now, false)),
                signalled: false,
                args: r.args,
            };
            self.relays.insert(r.name, relay);
        }
    }

    fn last_serial(&self, deployment: &str) -> u64 {
        self.serials.get(deployment).copied().unwrap_or(0)
    }

    fn set_ready(&mut self, name: &str, ready: bool, now: Instant) {
        let Some(relay) = self.relays.get_mut(name) else {
            return;
        };
        if relay.stop.is_some() {
            return;
        }
        relay.ready = ready;
        if ready && relay.ready_after.is_none() {
            relay.ready_after = Some(now.saturating_duration_since(relay.started));
            if let Some(tier) = self.tiers.get_mut(&relay.deployment) {
                tier.crashes_in_a_row = 0;
            }
            self.record(name);
        }
    }

    fn status(&self, now: Instant) -> FleetStatus {
        let view = |name: &String, r: &Relay| RelayStatus {
            name: name.clone(),
            deployment: r.deployment.clone(),
            region: r.region.clone(),
            tier: r.kind,
            address: r.address,
            rtmp: r.rtmp,
            http: r.http,
            admin: r.probe,
            pid: r.process.pid(),
            ready: r.ready,
            draining: r.stop.is_some(),
            age: now.saturating_duration_since(r.started),
            ready_after: r.ready_after,
            deletion_cost: self.costs.get(name).cloned(),
            args: r.args.clone(),
            log: r.process.log.clone(),
        };
        let mut deployments: Vec<DeploymentStatus> = self
            .tiers
            .iter()
            .map(|(name, t)| {
                let relays: Vec<RelayStatus> = self
                    .relays
                    .iter()
                    .filter(|(_, r)| &r.deployment == name)
                    .map(|(n, r)| view(n, r))
                    .collect();
                let count = |f: fn(&RelayStatus) -> bool| {
                    u32::try_from(relays.iter().filter(|r| f(r)).count()).unwrap_or(u32::MAX)
                };
                DeploymentStatus {
                    name: name.clone(),
                    region: t.region.clone(),
                    tier: t.kind,
                    desired: t.replicas,
                    running: count(|r| !r.draining),
                    ready: count(|r| r.ready && !r.draining),
                    restarts: t.restarts,
                    last_failure: t.last_failure.clone(),
                    waiting: t.waiting.clone(),
                    service_address: self.stand_ins.get(&t.service).map(|p| p.address),
                    relays,
                }
            })
            .collect();
        deployments.sort_by_key(|d| self.tiers.get(&d.name).map(|t| t.order));
        let mut orphans: Vec<RelayStatus> = self
            .relays
            .iter()
            .filter(|(_, r)| !self.tiers.contains_key(&r.deployment))
            .map(|(n, r)| view(n, r))
            .collect();
        if !self.applied {
            // Relays adopted from a previous run, before the first apply: their Deployments
            // as an API server would still hold them (replicas: the relays not stopping), so
            // the first reconcile sees the fleet it inherits, not an empty one.
            let mut adopted: BTreeMap<String, DeploymentStatus> = BTreeMap::new();
            for relay in orphans.drain(..) {
                let d =
                    adopted
                        .entry(relay.deployment.clone())
                        .or_insert_with(|| DeploymentStatus {
                            name: relay.deployment.clone(),
                            region: relay.region.clone(),
                            tier: relay.tier,
                            desired: 0,
                            running: 0,
                            ready: 0,
                            restarts: 0,
                            last_failure: None,
                            waiting: None,
                            service_address: None,
                            relays: Vec::new(),
                        });
                if !relay.draining {
                    d.desired += 1;
                    d.running += 1;
                    d.ready += u32::from(relay.ready);
                }
                d.relays.push(relay);
            }
            deployments.extend(adopted.into_values());
        }
        let services = self
            .stand_ins
            .iter()
            .map(|(key, p)| ServiceStatus {
                name: key
                    .split_once('/')
                    .map_or(key.as_str(), |(_, n)| n)
                    .to_string(),
                address: p.address,
                ports: p.ports.clone(),
                backends: p.backends.clone(),
            })
            .collect();
        FleetStatus {
            deployments,
            orphans,
            services,
        }
    }
}

/// The address `flag` is given in `args` (`--flag ADDR` or `--flag=ADDR`), if any.
fn flag_address(args: &[String], flag: &str) -> Option<SocketAddr> {
    args.iter()
        .enumerate()
        .find_map(|(i, a)| {
            if a == flag {
                args.get(i + 1).cloned()
            } else {
                a.strip_prefix(flag)
                    .and_then(|rest| rest.strip_prefix('='))
                    .map(str::to_string)
            }
        })
        .and_then(|v| v.parse::<SocketAddr>().ok())
}

/// The address a listen flag gives the relay; the flag is added (relay default port) when
/// the container has none, so no relay binds 0.0.0.0.
fn listen_address(args: &mut Vec<String>, flag: &str, address: Ipv4Addr, port: u16) -> SocketAddr {
    match flag_address(args, flag) {
        Some(a) => a,
        None => {
            let a = SocketAddr::from((address, port));
            args.push(flag.to_string());
            args.push(a.to_string());
            a
        }
    }
}
