//! What the operator sees of a Stream's relays, turned into planner inputs. Pure: pods and
//! Deployments come in as plain views, scrape results as values.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use surge_planner::{RegionInput, RelayLoad, Tier, TierCount};

use crate::advertise::NodeView;
use crate::labels::{
    LABEL_REGION, POD_ADVERTISE_HOST, POD_DELETION_COST, TierKind, tier_from_labels,
};

/// The parts of a relay pod the operator uses.
#[derive(Clone, Debug, PartialEq)]
pub struct PodView {
    pub name: String,
    pub tier: TierKind,
    pub region: String,
    /// Running, with an IP: it should answer a scrape.
    pub ip: Option<String>,
    pub ready: bool,
    /// Seconds from creation to Ready, when it is Ready.
    pub ready_after_seconds: Option<f64>,
    pub deletion_cost: Option<String>,
    pub terminating: bool,
    /// The node it is scheduled on (`spec.nodeName`), once it is.
    pub node: Option<String>,
    /// Its `surge.dev/advertise-host` annotation, if set.
    pub advertise_host: Option<String>,
}

impl PodView {
    /// `None` for pods that are not relays of a Stream (no tier/region labels).
    pub fn from_pod(pod: &Pod) -> Option<PodView> {
        let labels = pod.metadata.labels.as_ref()?;
        let tier = tier_from_labels(labels)?;
        let region = labels.get(LABEL_REGION)?.clone();
        let status = pod.status.as_ref();
        let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
        let ready_condition = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready" && c.status == "True"));
        let ready_after_seconds = match (ready_condition, &pod.metadata.creation_timestamp) {
            (Some(c), Some(created)) => c
                .last_transition_time
                .as_ref()
                .map(|t| (t.0.as_second() - created.0.as_second()).max(0) as f64),
            _ => None,
        };
        let annotation = |key: &str| {
            pod.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(key).cloned())
        };
        Some(PodView {
            name: pod.metadata.name.clone()?,
            tier,
            region,
            ip: if running {
                status
                    .and_then(|s| s.pod_ip.clone())
                    .filter(|ip| !ip.is_empty())
            } else {
                None
            },
            ready: ready_condition.is_some(),
            ready_after_seconds,
            deletion_cost: annotation(POD_DELETION_COST),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            node: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            advertise_host: annotation(POD_ADVERTISE_HOST),
        })
    }
}

/// Replicas asked for and Ready of one Deployment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeploymentCounts {
    pub desired: i32,
    pub ready: i32,
}

impl DeploymentCounts {
    pub fn from_deployment(d: &Deployment) -> DeploymentCounts {
        DeploymentCounts {
            desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            ready: d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
        }
    }
}

/// One Deployment the Stream owns: its name, the tier its labels name (if they do) and its
/// replica counts.
#[derive(Clone, Debug, PartialEq)]
pub struct DeploymentView {
    pub name: String,
    /// (region, tier) from the `surge.dev/region` and tier labels.
    pub tier: Option<(String, TierKind)>,
    pub counts: DeploymentCounts,
}

impl DeploymentView {
    pub fn from_deployment(d: &Deployment) -> DeploymentView {
        let labels = d.metadata.labels.as_ref();
        let tier = labels.and_then(|l| Some((l.get(LABEL_REGION)?.clone(), tier_from_labels(l)?)));
        DeploymentView {
            name: d.metadata.name.clone().unwrap_or_default(),
            tier,
            counts: DeploymentCounts::from_deployment(d),
        }
    }
}

/// One Service the Stream owns, as far as its published address goes.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceView {
    pub name: String,
    /// The address a load balancer gave a `LoadBalancer` Service
    /// (`status.loadBalancer.ingress[0]`: its `ip`, else its `hostname`); `None` until then
    /// and for other types.
    pub external_host: Option<String>,
}

impl ServiceView {
    pub fn from_service(s: &Service) -> ServiceView {
        let load_balancer =
            s.spec.as_ref().and_then(|spec| spec.type_.as_deref()) == Some("LoadBalancer");
        let ingress = s
            .status
            .as_ref()
            .and_then(|st| st.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .and_then(|i| i.first());
        let external_host = ingress
            .filter(|_| load_balancer)
            .and_then(|i| {
                let ip = i.ip.as_deref().filter(|h| !h.is_empty());
                ip.or(i.hostname.as_deref().filter(|h| !h.is_empty()))
            })
            .map(str::to_string);
        ServiceView {
            name: s.metadata.name.clone().unwrap_or_default(),
            external_host,
        }
    }
}

/// Result of scraping one pod: its viewers of this Stream, or why it could not be read.
pub type ScrapeOutcome = Result<u64, String>;

/// Everything one reconcile reads about a Stream's children, as plain values: the Deployments
/// it owns, its relay pods and what each running pod answered on `/api/v1/streams`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub deployments: Vec<DeploymentView>,
    pub pods: Vec<PodView>,
    /// Per pod name.
    pub scrapes: BTreeMap<String, ScrapeOutcome>,
    /// The Services it owns (for the addresses the status publishes).
    pub services: Vec<ServiceView>,
    /// The nodes its edge pods run on (read for `hostPort` exposure only).
    pub nodes: Vec<NodeView>,
    /// The Secret with its signing key (`None`: not read, as when signing is off).
    pub signing_key: Option<crate::integrity::SecretRead>,
    /// Per pod name: the verification failures it reported for this Stream, if any.
    pub integrity: BTreeMap<String, surge_wire::streams_api::IntegrityStats>,
    /// Per pod name: the upstream it pulls this Stream from now (`rtmp://` URL), for the
    /// pods connected to one.
    pub upstreams: BTreeMap<String, String>,
    /// Per pod name: the load it reported (relays that predate the field report none).
    pub rooms: BTreeMap<String, crate::quality::RelayRoom>,
    /// Per pod name: its viewers of this Stream that a locator placed there by overflow, by
    /// their own region (only pods that hold some).
    pub overflow_viewers: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Observed {
    /// Replica counts by Deployment name.
    pub fn counts_by_name(&self) -> BTreeMap<String, DeploymentCounts> {
        self.deployments
            .iter()
            .map(|d| (d.name.clone(), d.counts))
            .collect()
    }

    /// External hosts by Service name, of the Services that have one.
    pub fn external_hosts(&self) -> BTreeMap<String, String> {
        self.services
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.external_host.clone()?)))
            .collect()
    }

    /// Replica counts by (region, tier), for [`observe`].
    pub fn counts_by_tier(&self) -> BTreeMap<(String, TierKind), DeploymentCounts> {
        self.deployments
            .iter()
            .filter_map(|d| Some((d.tier.clone()?, d.counts)))
            .collect()
    }
}

/// Everything observed about a Stream's relays in one reconcile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    /// Per region: its viewers ([`crate::region_viewers`]: its edges' own and its overflowed
    /// ones); `None` when nothing of it was counted.
    pub region_viewers: BTreeMap<String, Option<u64>>,
    /// Per relay that answered: the viewers it serves, by their region
    /// ([`crate::region_viewers::served_by_relay`]).
    pub served_by_relay: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per region: planner inputs without samples (the caller adds its history).
    pub regions: BTreeMap<String, RegionInput>,
    /// Relays that should have answered but did not: (pod, why).
    pub unreachable: Vec<(String, String)>,
    /// Per pod viewers, for deletion costs.
    pub pod_viewers: BTreeMap<String, u64>,
}

impl Observation {
    pub fn total_viewers(&self) -> u64 {
        self.region_viewers.values().flatten().sum()
    }
}

/// Combines pods, their scrape outcomes and the Deployments' counts.
/// `deployments` maps (region, tier) to counts; `regions` lists the spec's regions;
/// `overflow` the viewers each pod holds by overflow, by region.
pub fn observe(
    regions: &[String],
    pods: &[PodView],
    scrapes: &BTreeMap<String, ScrapeOutcome>,
    overflow: &BTreeMap<String, BTreeMap<String, u64>>,
    deployments: &BTreeMap<(String, TierKind), DeploymentCounts>,
) -> Observation {
    let served_by_relay = crate::region_viewers::served_by_relay(pods, scrapes, overflow);
    let mut obs = Observation {
        region_viewers: crate::region_viewers::region_viewers(regions, &served_by_relay),
        served_by_relay,
        ..Observation::default()
    };
    for region in regions {
        let edges = deployments
            .get(&(region.clone(), TierKind::Edge))
            .copied()
            .unwrap_or_default();
        let levels = deployments
            .keys()
            .filter(|(r, t)| r == region && matches!(t, TierKind::Reflector(_)))
            .map(|(_, t)| t.level())
            .max()
            .unwrap_or(0);
        let reflectors = (1..=levels)
            .map(|level| {
                let c = deployments
                    .get(&(region.clone(), TierKind::Reflector(level)))
                    .copied()
                    .unwrap_or_default();
                tier_count(c)
            })
            .collect();
        let mut relays = Vec::new();
        for pod in pods
            .iter()
            .filter(|p| &p.region == region && !p.terminating)
        {
            let tier = match pod.tier {
                TierKind::Edge => Tier::Edge,
                TierKind::Reflector(level) => Tier::Reflector(level),
                TierKind::Origin => continue,
            };
            let load = match scrapes.get(&pod.name) {
                Some(Ok(v)) => {
                    obs.pod_viewers.insert(pod.name.clone(), *v);
                    *v
                }
                _ => 0,
            };
            relays.push(RelayLoad {
                name: pod.name.clone(),
                tier,
                viewers: load,
                ready: pod.ready,
            });
        }
        obs.regions.insert(
            region.clone(),
            RegionInput {
                name: region.clone(),
                samples: Vec::new(),
                edges: tier_count(edges),
                reflectors,
                relays,
                // The edges' load is added by `quality::edge_loads`.
                edge_load: None,
                // The Stream's bounds are added when the plan input is built (sizing).
                bounds: None,
            },
        );
    }
    for pod in pods.iter().filter(|p| !p.terminating) {
        if let Some(Err(why)) = scrapes.get(&pod.name) {
            obs.unreachable.push((pod.name.clone(), why.clone()));
        }
    }
    obs
}

fn tier_count(c: DeploymentCounts) -> TierCount {
    TierCount {
        relays: u32::try_from(c.desired).unwrap_or(0),
        ready: u32::try_from(c.ready).unwrap_or(0),
    }
}

/// Median seconds from pod creation to Ready over the given pods (the planner's
/// `relay_ready_seconds`); `None` until some pod has become Ready.
pub fn relay_ready_seconds(pods: &[PodView]) -> Option<f64> {
    let mut times: Vec<f64> = pods.iter().filter_map(|p| p.ready_after_seconds).collect();
    if times.is_empty() {
        return None;
    }
    times.sort_by(f64::total_cmp);
    Some(times[times.len() / 2])
}

/// Deletion costs to set so the ReplicaSet removes the least-loaded relays first:
/// `removal_order` is cheapest first; the cost is the position. Only pods whose annotation
/// differs are returned, as (pod, cost).
pub fn deletion_costs(removal_order: &[String], pods: &[PodView]) -> Vec<(String, String)> {
    removal_order
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let cost = i.to_string();
            let pod = pods.iter().find(|p| &p.name == name)?;
            (pod.deletion_cost.as_deref() != Some(cost.as_str())).then(|| (name.clone(), cost))
        })
        .collect()
}
