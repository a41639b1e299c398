//! The pod runner's loop: every interval, list the relay pods and the namespace's Services,
//! rewrite the hosts file when its text changes, stop the relays of pods that are gone or
//! being deleted, and start one for each runnable pod without one. A relay that exits while
//! its pod is still there is started again after a pause, as a kubelet restarts a container.
//! On SIGINT or SIGTERM every relay it started is stopped. IO.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Client;
use kube::api::{Api, ListParams};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::hosts;
use super::launch::{launch, runnable};
use crate::local::hosts_file::write_atomically;
use crate::local::process::RelayProcess;

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
}

/// A relay this runner started.
struct Running {
    name: String,
    process: RelayProcess,
}

struct Runner {
    opts: PodsOptions,
    hosts_file: PathBuf,
    /// By pod UID.
    relays: BTreeMap<String, Running>,
    /// Pods whose relay exited: not started again before then.
    paused: BTreeMap<String, Instant>,
    /// The last problem logged per pod, so a pod that cannot start is logged once.
    problems: BTreeMap<String, String>,
    hosts_text: Option<String>,
    stopping: JoinSet<()>,
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
    let services: Api<Service> = Api::namespaced(client, &namespace);
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
        paused: BTreeMap::new(),
        problems: BTreeMap::new(),
        hosts_text: None,
        stopping: JoinSet::new(),
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
        let listed = tokio::try_join!(pods.list(&list), services.list(&every));
        match listed {
            Ok((p, s)) => runner.sync(&p.items, &s.items),
            Err(e) => tracing::warn!(error = %e, "listing pods and Services failed; retrying"),
        }
        // Reap finished stops.
        while runner.stopping.try_join_next().is_some() {}
    }
    runner.stop_all().await;
    Ok(())
}

impl Runner {
    fn sync(&mut self, pods: &[Pod], services: &[Service]) {
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
        for uid in gone {
            if let Some(relay) = self.relays.remove(&uid) {
                self.stop(relay, "its pod is gone or terminating");
            }
        }
        let now = Instant::now();
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
        for (uid, (pod, target)) in wanted {
            if self.relays.contains_key(&uid) || self.paused.contains_key(&uid) {
                continue;
            }
            let log = self.opts.log_dir.join(format!("{}.log", target.name));
            let started = launch(pod, target.ip, &self.hosts_file)
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
        for relay in relays.into_values() {
            self.stop(relay, "the runner is stopping");
        }
        while self.stopping.join_next().await.is_some() {}
    }
}
