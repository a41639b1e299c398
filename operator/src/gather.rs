//! The reconcile's observe step, the IO half: lists the Deployments and relay pods of a Stream
//! and scrapes every running relay, into one plain [`Observed`] for `decide` (observe.rs turns
//! it into planner inputs).

use std::collections::BTreeMap;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::ListParams;
use kube::{Api, Client, Resource};

use crate::advertise::{NodeView, host_port_nodes};
use crate::build::Target;
use crate::labels::stream_selector_string;
use crate::metrics::Metrics;
use crate::observe::{DeploymentView, Observed, PodView, ScrapeOutcome, ServiceView};
use crate::quality::RelayRoom;
use crate::scrape::Scraper;
use surge_wire::streams_api::IntegrityStats;

/// Lists what `target`'s Stream owns (Deployments, relay pods, Services) and scrapes its
/// relays on `port`; failed scrapes are counted in `metrics` and kept as outcomes (an
/// unreachable relay is not an error here). With `host_ports` (`hostPort` exposure) it also
/// reads the nodes its edges run on.
pub async fn gather(
    client: &Client,
    scraper: &Scraper,
    port: u16,
    target: &Target,
    host_ports: bool,
    metrics: &Metrics,
) -> Result<Observed, kube::Error> {
    let lp = ListParams::default().labels(&stream_selector_string(&target.stream));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &target.namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let deployments = deployments
        .list(&lp)
        .await?
        .items
        .iter()
        .filter(|d| owned_by(*d, &target.owner.uid))
        .map(DeploymentView::from_deployment)
        .collect();
    let pods: Vec<PodView> = pods
        .list(&lp)
        .await?
        .items
        .iter()
        .filter_map(PodView::from_pod)
        .collect();
    let services: Api<Service> = Api::namespaced(client.clone(), &target.namespace);
    let services = services
        .list(&lp)
        .await?
        .items
        .iter()
        .filter(|s| owned_by(*s, &target.owner.uid))
        .map(ServiceView::from_service)
        .collect();
    let nodes = if host_ports {
        get_nodes(client, &host_port_nodes(&pods)).await
    } else {
        Vec::new()
    };
    let Scrapes {
        outcomes,
        integrity,
        upstreams,
        rooms,
        overflow_viewers,
    } = scrape_all(scraper, port, &pods, target, metrics).await;
    Ok(Observed {
        deployments,
        pods,
        scrapes: outcomes,
        services,
        nodes,
        signing_key: None,
        integrity,
        upstreams,
        rooms,
        overflow_viewers,
    })
}

/// Reads the named nodes (at most 16 at a time). A node that cannot be read is left out (its
/// edges keep the host they advertise) rather than failing the reconcile.
async fn get_nodes(client: &Client, names: &[String]) -> Vec<NodeView> {
    let api: Api<Node> = Api::all(client.clone());
    // Owned names and a plain collect: the controller's future must stay Send for any lifetime.
    let jobs = names.iter().cloned().map(|name| {
        let api = api.clone();
        async move {
            match api.get(&name).await {
                Ok(node) => Some(NodeView::from_node(&node)),
                Err(kube::Error::Api(s)) if s.code == 404 => None,
                Err(e) => {
                    tracing::warn!(node = %name, error = %e, "could not read the node of an edge");
                    None
                }
            }
        }
    });
    let nodes: Vec<Option<NodeView>> = futures::stream::iter(jobs)
        .buffer_unordered(16)
        .collect()
        .await;
    nodes.into_iter().flatten().collect()
}

fn owned_by<K: Resource>(obj: &K, uid: &str) -> bool {
    obj.meta()
        .owner_references
        .as_ref()
        .is_some_and(|o| o.iter().any(|o| o.uid == uid))
}

/// What the relays answered, per pod name.
pub(crate) struct Scrapes {
    pub outcomes: BTreeMap<String, ScrapeOutcome>,
    /// The pods that reported verification failures of the Stream.
    pub integrity: BTreeMap<String, IntegrityStats>,
    /// The upstream each pod pulling the Stream is connected to now (its `rtmp://` URL).
    pub upstreams: BTreeMap<String, String>,
    /// The load each pod that reported one carries (quality as a second signal).
    pub rooms: BTreeMap<String, RelayRoom>,
    /// The viewers each pod holds by overflow, by their own region (pods holding some).
    pub overflow_viewers: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Scrapes every running relay pod concurrently (at most 32 at a time).
pub(crate) async fn scrape_all(
    scraper: &Scraper,
    port: u16,
    pods: &[PodView],
    target: &Target,
    metrics: &Metrics,
) -> Scrapes {
    let targets: Vec<(String, String)> = pods
        .iter()
        .filter(|p| !p.terminating)
        .filter_map(|p| p.ip.clone().map(|ip| (p.name.clone(), ip)))
        .collect();
    let jobs = targets.into_iter().map(|(pod, ip)| {
        let scraper = scraper.clone();
        let (app, stream) = (target.app.clone(), target.stream.clone());
        async move {
            let answer = scraper.scrape(&ip, port).await;
            let mine = answer.as_ref().ok().and_then(|stats| {
                stats
                    .streams
                    .iter()
                    .find(|s| s.app == app && s.name == stream)
            });
            let integrity = mine.and_then(|s| s.integrity.clone());
            // Only a connection that plays: a relay retrying has no upstream in use.
            let upstream = mine
                .and_then(|s| s.upstream.as_ref())
                .filter(|u| u.state == "connected")
                .and_then(|u| u.url.clone());
            let room = answer.as_ref().ok().and_then(RelayRoom::of);
            let overflow = answer
                .as_ref()
                .map(|stats| stats.overflow_viewers_of(&app, &stream))
                .unwrap_or_default();
            let outcome = answer
                .map(|stats| stats.viewers_of(&app, &stream))
                .map_err(|e| format!("{ip}:{port}: {e}"));
            (pod, outcome, (integrity, upstream, room, overflow))
        }
    });
    type Extras = (
        Option<IntegrityStats>,
        Option<String>,
        Option<RelayRoom>,
        BTreeMap<String, u64>,
    );
    let results: Vec<(String, ScrapeOutcome, Extras)> = futures::stream::iter(jobs)
        .buffer_unordered(32)
        .collect()
        .await;
    let mut scrapes = Scrapes {
        outcomes: BTreeMap::new(),
        integrity: BTreeMap::new(),
        upstreams: BTreeMap::new(),
        rooms: BTreeMap::new(),
        overflow_viewers: BTreeMap::new(),
    };
    for (pod, outcome, (integrity, upstream, room, overflow)) in results {
        if !overflow.is_empty() {
            scrapes.overflow_viewers.insert(pod.clone(), overflow);
        }
        if let Some(url) = upstream {
            scrapes.upstreams.insert(pod.clone(), url);
        }
        if let Some(r) = room {
            scrapes.rooms.insert(pod.clone(), r);
        }
        if let Err(e) = &outcome {
            metrics.scrape_errors.inc();
            tracing::debug!(%pod, error = %e, "relay scrape failed");
        }
        if let Some(i) = integrity {
            scrapes.integrity.insert(pod.clone(), i);
        }
        scrapes.outcomes.insert(pod, outcome);
    }
    scrapes
}
