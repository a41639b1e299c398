//! The pod runner's loop: every interval, list the relay pods and the namespace's Services,
//! rewrite the hosts file when its text changes, stop the relays of pods that are gone or
//! being deleted (after the pod's preStop sleep, during which the relay stays reachable on its
//! host ports but leaves the hosts file and the load balancers, as endpoints drop a
//! terminating pod), and start one for each runnable pod without one. A relay that exits while
//! its pod is still there is started again after a pause, as a kubelet restarts a container.
//! On SIGINT or SIGTERM every relay it started is stopped. With `--host-ports` and
//! `--load-balancers` it also opens the listeners [`super::exposure`] plans and writes each
//! load balancer's address into its Service's status. Each relay's Downward API volumes are
//! projected as files, and so are its Secret and ConfigMap volumes, from the namespace's
//! Secrets and ConfigMaps listed each round ([`super::pod_files`]). IO.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret, Service};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::exposure::{self, Opening};
use super::hosts;
use super::launch::{launch_on, pre_stop_sleep, relay_container, runnable};
use super::pod_files::{Mount, VolumeSources, downward_files, object_files};
use crate::local::hosts_file::write_atomically;
use crate::local::process::RelayProcess;
use crate::local::service_proxy::ServiceProxy;

/// A relay that exited while its pod was still there waits this long before it starts again
/// (e.g. its address still held by the relay of a pod that had the same IP).
const RESTART_PAUSE: Duration = Duration::from_secs(2);

#[derive(Clone, Debug)]
pub struct PodsOptions {
    /// Namespace of the pods and Services (default: the kubeconfig's).
    pub namespace: Option<String>,
    /// Label selector of the relay pods.
    pub selector: Option<String>,
    pub relay_bin: PathBuf,
    /// Where `<pod>.log` of each relay goes.
    pub log_dir: PathBuf,
    /// The hosts file every relay reads (default: `<log dir>/hosts`).
    pub hosts_file: Option<PathBuf>,
    pub cluster_domain: String,
    /// How often the API is listed.
    pub interval: Duration,
    /// How long a relay has after SIGTERM before SIGKILL.
    pub stop_grace: Duration,
    /// Open each pod's host ports on its node's `surge.dev/external-host` (a loopback
    /// address) and give the relay that host as `status.hostIP`.
    pub host_ports: bool,
    /// Stand in for a cloud's load balancers: each `LoadBalancer` Service gets an address
    /// `PREFIX.x.y` forwarding to its Ready pods, written into its status.
    pub load_balancers: Option<[u8; 2]>,
}

/// A relay this runner started.
struct Running {
    name: String,
    process: RelayProcess,
    /// The pod as last listed while runnable (a deleted pod's host ports stay open from it).
    pod: Pod,
}

struct Runner {
    opts: PodsOptions,
    hosts_file: PathBuf,
    /// By pod UID.
    relays: BTreeMap<String, Running>,
    /// Relays of deleted pods in their preStop sleep, SIGTERM due at the instant, by pod UID.
    terminating: BTreeMap<String, (Running, Instant)>,
    /// Pods whose relay exited: not started again before then.
    paused: BTreeMap<String, Instant>,
    /// The last problem logged per pod, so a pod that cannot start is logged once.
    problems: BTreeMap<String, String>,
    hosts_text: Option<String>,
    stopping: JoinSet<()>,
    /// Listeners standing in for host ports and load balancers, by [`Opening::key`].
    openings: BTreeMap<String, ServiceProxy>,
    /// Load-balancer addresses by [`exposure::load_balancer_key`], kept while the Service is.
    lb_addresses: BTreeMap<String, Ipv4Addr>,
    /// Projected Downward API files and the text last written to each.
    pod_files: BTreeMap<PathBuf, String>,
    /// The last problem logged per listener that cannot open.
    open_problems: BTreeMap<String, String>,
}

/// A load balancer's address to write into its Service's status.
struct IngressPatch {
    service: String,
    ip: Ipv4Addr,
}

/// Runs until SIGINT or SIGTERM, then stops every relay it started.
pub async fn run(opts: PodsOptions) -> anyhow::Result<()> {
    if !opts.relay_bin.is_file() {
        anyhow::bail!("no relay binary at {}", opts.relay_bin.display());
    }
    std::fs::create_dir_all(&opts.log_dir)
        .with_context(|| format!("creating the log dir {}", opts.log_dir.display()))?;
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API (KUBECONFIG or in-cluster)")?;
    let namespace = opts
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let nodes: Api<Node> = Api::all(client);
    let every = ListParams::default();
    let mut list = ListParams::default();
    if let Some(selector) = &opts.selector {
        list = list.labels(selector);
    }
    let hosts_file = opts
        .hosts_file
        .clone()
        .unwrap_or_else(|| opts.log_dir.join("hosts"));
    tracing::info!(
        namespace,
        selector = opts.selector.as_deref().unwrap_or(""),
        hosts_file = %hosts_file.display(),
        log_dir = %opts.log_dir.display(),
        "running a relay for every Running relay pod"
    );
    let mut runner = Runner {
        opts,
        hosts_file,
        relays: BTreeMap::new(),
        terminating: BTreeMap::new(),
        paused: BTreeMap::new(),
        problems: BTreeMap::new(),
        hosts_text: None,
        stopping: JoinSet::new(),
        openings: BTreeMap::new(),
        lb_addresses: BTreeMap::new(),
        pod_files: BTreeMap::new(),
        open_problems: BTreeMap::new(),
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut tick = tokio::time::interval(runner.opts.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
        let host_ports = runner.opts.host_ports;
        let list_nodes = async {
            if host_ports {
                nodes.list(&every).await.map(|l| l.items)
            } else {
                Ok(Vec::new())
            }
        };
        let listed = tokio::try_join!(pods.list(&list), services.list(&every), list_nodes);
        // The kubelet's view of the Secrets and ConfigMaps the pods mount.
        let sources = volume_sources(&secrets, &config_maps).await;
        match listed {
            Ok((p, s, n)) => {
                for patch in runner.sync(&p.items, &s.items, &n, &sources) {
                    write_ingress(&services, &patch).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "listing pods, Services and nodes failed; retrying")
            }
        }
        // Reap finished stops.
        while runner.stopping.try_join_next().is_some() {}
    }
    runner.stop_all().await;
    Ok(())
}

/// The namespace's Secrets and ConfigMaps as text by name and key; a failed listing reads
/// as none (logged), so only volume files wait for the next round.
async fn volume_sources(secrets: &Api<Secret>, config_maps: &Api<ConfigMap>) -> VolumeSources {
    let every = ListParams::default();
    let mut sources = VolumeSources::default();
    match secrets.list(&every).await {
        Ok(list) => {
            for s in list.items {
                let data = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                sources
                    .secrets
                    .insert(s.metadata.name.unwrap_or_default(), data);
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing Secrets failed; retrying"),
    }
    match config_maps.list(&every).await {
        Ok(list) => {
            for m in list.items {
                let name = m.metadata.name.unwrap_or_default();
                sources.config_maps.insert(name, m.data.unwrap_or_default());
            }
        }
        Err(e) => tracing::warn!(error = %e, "listing ConfigMaps failed; retrying"),
    }
    sources
}

/// Writes a load balancer's address into its Service's status, as a cloud controller does.
async fn write_ingress(services: &Api<Service>, patch: &IngressPatch) {
    let body = serde_json::json!({
        "status": {"loadBalancer": {"ingress": [{"ip": patch.ip.to_string()}]}}
    });
    match services
        .patch_status(
            &patch.service,
            &PatchParams::default(),
            &Patch::Merge(&body),
        )
        .await
    {
        Ok(_) => {
            tracing::info!(service = %patch.service, ip = %patch.ip, "load balancer address written to the Service's status")
        }
        Err(e) => {
            tracing::warn!(service = %patch.service, error = %e, "writing the load balancer's address failed; retrying")
        }
    }
}

impl Runner {
    /// Brings relays, listeners and files in line with the listed objects; returns the
    /// Service statuses to write.
    fn sync(
        &mut self,
        pods: &[Pod],
        services: &[Service],
        nodes: &[Node],
        sources: &VolumeSources,
    ) -> Vec<IngressPatch> {
        // Names first, so a relay started below resolves its upstreams.
        let text = hosts::render(&hosts::entries(services, pods, &self.opts.cluster_domain));
        if self.hosts_text.as_deref() != Some(text.as_str()) {
            match write_atomically(&self.hosts_file, &text) {
                Ok(()) => self.hosts_text = Some(text),
                Err(e) => {
                    tracing::warn!(path = %self.hosts_file.display(), error = %e, "writing the hosts file failed")
                }
            }
        }
        let wanted: BTreeMap<String, (&Pod, super::launch::Runnable)> = pods
            .iter()
            .filter_map(|p| runnable(p).map(|r| (r.uid.clone(), (p, r))))
            .collect();
        let gone: Vec<String> = self
            .relays
            .keys()
            .filter(|uid| !wanted.contains_key(*uid))
            .cloned()
            .collect();
        let now = Instant::now();
        for uid in gone {
            if let Some(relay) = self.relays.remove(&uid) {
                let pre_stop = pre_stop_sleep(&relay.pod);
                if pre_stop.is_zero() {
                    self.stop(relay, "its pod is gone or terminating");
                } else {
                    tracing::info!(pod = %relay.name, ?pre_stop, "pod deleted: its relay gets SIGTERM after the preStop sleep");
                    self.terminating.insert(uid, (relay, now + pre_stop));
                }
            }
        }
        let due: Vec<String> = self
            .terminating
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in due {
            if let Some((relay, _)) = self.terminating.remove(&uid) {
                self.stop(relay, "its pod is gone or terminating");
            }
        }
        for (uid, (pod, _)) in &wanted {
            if let Some(r) = self.relays.get_mut(uid) {
                r.pod = (*pod).clone();
            }
        }
        let exited: Vec<String> = self
            .relays
            .iter_mut()
            .filter_map(|(uid, r)| r.process.try_wait().map(|status| (uid, r, status)))
            .map(|(uid, r, status)| {
                tracing::warn!(
                    pod = %r.name,
                    pid = r.process.pid(),
                    %status,
                    said = r.process.last_log_line().unwrap_or_default(),
                    "relay exited while its pod is there; starting it again in {RESTART_PAUSE:?}"
                );
                uid.clone()
            })
            .collect();
        for uid in exited {
            self.relays.remove(&uid);
            self.paused.insert(uid, now + RESTART_PAUSE);
        }
        self.paused
            .retain(|uid, until| *until > now && wanted.contains_key(uid));
        self.problems.retain(|uid, _| wanted.contains_key(uid));
        let node_hosts = if self.opts.host_ports {
            exposure::node_hosts(nodes)
        } else {
            BTreeMap::new()
        };
        let mut mounts_of: BTreeMap<String, Vec<Mount>> = BTreeMap::new();
        for (uid, (pod, target)) in &wanted {
            let dir = self.opts.log_dir.join("pods").join(&target.name);
            if let Some(container) = relay_container(pod) {
                let (mut mounts, files) = downward_files(pod, container, &dir);
                let (objects, object_files) = object_files(pod, container, &dir, sources);
                mounts.extend(objects);
                for file in files.into_iter().chain(object_files) {
                    self.project(&file.local, &file.value);
                }
                mounts_of.insert(uid.clone(), mounts);
            }
        }
        self.open(pods, services, &node_hosts);
        let patches = self.ingress_patches(services);
        for (uid, (pod, target)) in wanted {
            if self.relays.contains_key(&uid) || self.paused.contains_key(&uid) {
                continue;
            }
            let log = self.opts.log_dir.join(format!("{}.log", target.name));
            let node_host = exposure::node_host(pod, &node_hosts);
            let mounts = mounts_of.remove(&uid).unwrap_or_default();
            let started = launch_on(pod, target.ip, &self.hosts_file, node_host, &mounts)
                .map_err(|e| e.to_string())
                .and_then(|l| {
                    RelayProcess::spawn(&self.opts.relay_bin, &l.args, &l.env, &log)
                        .map(|p| (p, l))
                        .map_err(|e| format!("starting {}: {e}", self.opts.relay_bin.display()))
                });
            match started {
                Ok((process, l)) => {
                    tracing::info!(
                        pod = %target.name,
                        ip = %target.ip,
                        pid = process.pid(),
                        log = %log.display(),
                        args = l.args.join(" "),
                        "started relay"
                    );
                    self.problems.remove(&uid);
                    self.relays.insert(
                        uid,
                        Running {
                            name: target.name,
                            process,
                            pod: pod.clone(),
                        },
                    );
                }
                Err(problem) => {
                    if self.problems.get(&uid) != Some(&problem) {
                        tracing::warn!(pod = %target.name, %problem, "cannot run a relay for the pod");
                        self.problems.insert(uid, problem);
                    }
                }
            }
        }
        patches
    }

    /// Writes a projected file when its text changed (atomically: the relay may read it now).
    fn project(&mut self, path: &Path, value: &str) {
        if self.pod_files.get(path).map(String::as_str) == Some(value) {
            return;
        }
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| write_atomically(path, value));
        match written {
            Ok(()) => {
                self.pod_files.insert(path.to_path_buf(), value.to_string());
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "writing a pod's Downward API file failed")
            }
        }
    }

    /// Opens, moves or closes the host-port and load-balancer listeners, and points each at
    /// its pods now.
    fn open(
        &mut self,
        pods: &[Pod],
        services: &[Service],
        node_hosts: &BTreeMap<String, Ipv4Addr>,
    ) {
        let mut wanted: Vec<Opening> = Vec::new();
        if self.opts.host_ports {
            wanted.extend(exposure::host_port_openings(pods, node_hosts));
            // A terminating pod keeps its host ports through the preStop sleep.
            let terminating: Vec<Pod> = self
                .terminating
                .values()
                .map(|(r, _)| r.pod.clone())
                .collect();
            wanted.extend(exposure::host_port_openings(&terminating, node_hosts));
        }
        if let Some(prefix) = self.opts.load_balancers {
            let keys: BTreeSet<String> = services
                .iter()
                .filter(|s| exposure::is_load_balancer(s))
                .filter_map(exposure::load_balancer_key)
                .collect();
            self.lb_addresses.retain(|k, _| keys.contains(k));
            for key in keys {
                if self.lb_addresses.contains_key(&key) {
                    continue;
                }
                let taken: BTreeSet<Ipv4Addr> = self.lb_addresses.values().copied().collect();
                match exposure::allocate(prefix, &taken) {
                    Some(ip) => {
                        self.lb_addresses.insert(key, ip);
                    }
                    None => tracing::warn!(%key, "no load balancer address left under the prefix"),
                }
            }
            wanted.extend(exposure::load_balancer_openings(
                services,
                pods,
                &self.lb_addresses,
            ));
        }
        // Close what is gone or moved first: a new pod on the same node takes the same ports.
        let keep: BTreeMap<&str, &Opening> = wanted.iter().map(|o| (o.key.as_str(), o)).collect();
        self.openings.retain(|key, proxy| {
            let same = keep
                .get(key.as_str())
                .is_some_and(|o| o.address == proxy.address && o.ports == proxy.ports);
            if !same {
                tracing::info!(%key, address = %proxy.address, "closed");
            }
            same
        });
        for opening in wanted {
            if let Some(proxy) = self.openings.get(&opening.key) {
                proxy.set_backends(opening.backends);
                continue;
            }
            match ServiceProxy::bind(opening.address, &opening.ports) {
                Ok(proxy) => {
                    tracing::info!(key = %opening.key, address = %opening.address, ports = ?opening.ports, backends = ?opening.backends, "listening");
                    self.open_problems.remove(&opening.key);
                    proxy.set_backends(opening.backends);
                    self.openings.insert(opening.key, proxy);
                }
                Err(e) => {
                    let problem =
                        format!("listening on {} {:?}: {e}", opening.address, opening.ports);
                    if self.open_problems.get(&opening.key) != Some(&problem) {
                        tracing::warn!(key = %opening.key, %problem, "cannot open");
                        self.open_problems.insert(opening.key, problem);
                    }
                }
            }
        }
    }

    /// The load balancers listening whose Service's status does not name their address yet.
    fn ingress_patches(&self, services: &[Service]) -> Vec<IngressPatch> {
        services
            .iter()
            .filter_map(|s| {
                let key = exposure::load_balancer_key(s)?;
                let ip = self.openings.get(&key)?.address;
                let current = exposure::ingress_ip(s);
                (current != Some(ip.to_string().as_str())).then(|| IngressPatch {
                    service: s.metadata.name.clone().unwrap_or_default(),
                    ip,
                })
            })
            .collect()
    }

    /// SIGTERM now, SIGKILL after the stop grace; logs one line when it has exited.
    fn stop(&mut self, mut relay: Running, why: &'static str) {
        let grace = self.opts.stop_grace;
        self.stopping.spawn(async move {
            let pid = relay.process.pid();
            relay.process.terminate();
            let how = match tokio::time::timeout(grace, relay.process.wait()).await {
                Ok(()) => "SIGTERM",
                Err(_) => {
                    relay.process.kill();
                    relay.process.wait().await;
                    "SIGKILL after the grace"
                }
            };
            tracing::info!(pod = %relay.name, pid, why, by = how, "stopped relay");
        });
    }

    async fn stop_all(mut self) {
        tracing::info!(relays = self.relays.len(), "stopping every relay started");
        let relays = std::mem::take(&mut self.relays);
        let terminating = std::mem::take(&mut self.terminating);
        for relay in relays
            .into_values()
            .chain(terminating.into_values().map(|(r, _)| r))
        {
            self.stop(relay, "the runner is stopping");
        }
        while self.stopping.join_next().await.is_some() {}
    }
}
