//! The desired relay tree of a Stream: one entry per tier (origin; per region the reflector
//! levels and the edges), with replica counts from the plan, parents, and placement. Pure.

use std::collections::BTreeMap;

use crate::config::OperatorConfig;
use crate::crd::{Exposure, OVERFLOW_TIER_ABOVE, ServiceType, StreamSpec};
use crate::labels::{TierKind, peers_service_name, tier_object_name};
use crate::sizing::StreamPlan;

/// One tier: a Deployment plus a Service of the same name.
#[derive(Clone, Debug, PartialEq)]
pub struct TierPlan {
    pub kind: TierKind,
    /// The region the tier runs in (the origin's region for the origin).
    pub region: String,
    /// Deployment and Service name.
    pub name: String,
    pub replicas: i32,
    /// Service names to pull from, in order: the tier above, then the origin (fallback).
    pub upstreams: Vec<String>,
    pub node_selector: BTreeMap<String, String>,
    pub service_type: ServiceType,
    /// How the tier's relays place viewers; `None`: they do not (no locator, no host ports).
    pub placement: Option<TierPlacement>,
}

/// A locator tier's part in placement: edges with `spec.placement.exposure: hostPort`.
#[derive(Clone, Debug, PartialEq)]
pub struct TierPlacement {
    /// Open the RTMP and HTTP ports on the node and advertise the node's IP.
    pub host_ports: bool,
    /// Services whose addresses are the relay's `--placement-peer`s: its region's peers
    /// Service, then those of the regions it overflows to.
    pub peers: Vec<String>,
    /// `--overflow` steps as the relay spells them (`tier-above`, region names).
    pub overflow: Vec<String>,
}

/// A region's headless Service over its edges, the locators' view of them.
#[derive(Clone, Debug, PartialEq)]
pub struct PeersService {
    pub name: String,
    pub region: String,
}

/// The whole tree, origin first, then each region from its top tier down to its edges.
#[derive(Clone, Debug, PartialEq)]
pub struct TreePlan {
    pub tiers: Vec<TierPlan>,
    /// One per region when edges place viewers (`hostPort` exposure), in spec order.
    pub peers_services: Vec<PeersService>,
}

impl TreePlan {
    pub fn origin(&self) -> &TierPlan {
        &self.tiers[0]
    }

    pub fn region_tiers<'a>(&'a self, region: &'a str) -> impl Iterator<Item = &'a TierPlan> + 'a {
        self.tiers
            .iter()
            .filter(move |t| t.kind != TierKind::Origin && t.region == region)
    }
}

/// Node selector for a region: the region's own, or `<region-label>=<name>`.
pub fn region_node_selector(
    spec: &StreamSpec,
    region: &str,
    cfg: &OperatorConfig,
) -> BTreeMap<String, String> {
    spec.regions
        .iter()
        .find(|r| r.name == region)
        .and_then(|r| r.node_selector.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| BTreeMap::from([(cfg.region_label.clone(), region.to_string())]))
}

/// Lays the plan out as tiers (Deployments and Services to be). Regions missing from the plan get their `minEdges`.
pub fn plan_tiers(
    stream: &str,
    spec: &StreamSpec,
    plan: &StreamPlan,
    cfg: &OperatorConfig,
) -> TreePlan {
    let origin_name = tier_object_name(stream, &spec.origin.region, TierKind::Origin);
    let mut tiers = vec![TierPlan {
        kind: TierKind::Origin,
        region: spec.origin.region.clone(),
        name: origin_name.clone(),
        replicas: 1,
        upstreams: Vec::new(),
        node_selector: region_node_selector(spec, &spec.origin.region, cfg),
        service_type: spec.origin.service_type,
        placement: None,
    }];
    for region in &spec.regions {
        let (edges, reflectors) = match plan.region(&region.name) {
            Some(p) => (p.desired_edges, p.reflectors.clone()),
            None => (region.min_edges, Vec::new()),
        };
        let node_selector = region_node_selector(spec, &region.name, cfg);
        // Top level first: level N is fed by the origin, level 1 feeds the edges.
        let mut parent: Option<String> = None;
        for level in (1..=reflectors.len() as u32).rev() {
            let kind = TierKind::Reflector(level);
            let name = tier_object_name(stream, &region.name, kind);
            tiers.push(TierPlan {
                kind,
                region: region.name.clone(),
                name: name.clone(),
                replicas: to_replicas(reflectors[level as usize - 1]),
                upstreams: upstreams(parent.as_deref(), &origin_name),
                node_selector: node_selector.clone(),
                service_type: ServiceType::ClusterIP,
                placement: None,
            });
            parent = Some(name);
        }
        tiers.push(TierPlan {
            kind: TierKind::Edge,
            region: region.name.clone(),
            name: tier_object_name(stream, &region.name, TierKind::Edge),
            replicas: to_replicas(edges),
            upstreams: upstreams(parent.as_deref(), &origin_name),
            node_selector,
            service_type: spec.playback.service_type,
            placement: edge_placement(stream, spec, &region.name),
        });
    }
    let peers_services = match spec.placement.exposure {
        Exposure::Service => Vec::new(),
        Exposure::HostPort => spec
            .regions
            .iter()
            .map(|r| PeersService {
                name: peers_service_name(stream, &r.name),
                region: r.name.clone(),
            })
            .collect(),
    };
    TreePlan {
        tiers,
        peers_services,
    }
}

/// An edge's placement: none behind a Service (a locator's redirect would name a pod IP the
/// viewer cannot reach, so the Service and the edges' readiness spread viewers); with host
/// ports, a locator over its region's edges and the edges of each region it overflows to. Only
/// edges are in view, because only edges are exposed: `tierAbove` then finds no relay.
fn edge_placement(stream: &str, spec: &StreamSpec, region: &str) -> Option<TierPlacement> {
    if spec.placement.exposure != Exposure::HostPort {
        return None;
    }
    let mut peers = vec![peers_service_name(stream, region)];
    let mut overflow = Vec::new();
    for step in &spec.placement.overflow {
        if step == OVERFLOW_TIER_ABOVE {
            overflow.push("tier-above".to_string());
        } else if step != region {
            // The region's own edges are always tried first; listing them again adds nothing.
            overflow.push(step.clone());
            peers.push(peers_service_name(stream, step));
        }
    }
    Some(TierPlacement {
        host_ports: true,
        peers,
        overflow,
    })
}

fn upstreams(parent: Option<&str>, origin: &str) -> Vec<String> {
    let mut out: Vec<String> = parent.map(str::to_string).into_iter().collect();
    out.push(origin.to_string());
    out
}

fn to_replicas(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
