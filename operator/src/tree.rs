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
    /// External upstreams pulled from after `upstreams` (`spec.upstream`, in its written
    /// form): in place of the origin, so the top tier's only upstreams and the fallback of
    /// the tiers below it. Empty for a Stream with an origin.
    pub external: Vec<String>,
    pub node_selector: BTreeMap<String, String>,
    pub service_type: ServiceType,
    /// How the tier's relays place viewers; `None`: they do not (no locator, no host ports).
    pub placement: Option<TierPlacement>,
    /// How the tier's relays choose a parent by room, when the tier above is a reflector
    /// level (the origin is one relay: nothing to choose).
    pub parents: Option<ParentChoice>,
}

/// `--parent-peer`, `--sibling-peer` and `--parent-fanout` of a tier fed by reflectors.
#[derive(Clone, Debug, PartialEq)]
pub struct ParentChoice {
    /// Headless Service over the tier above (the candidate parents).
    pub parents: String,
    /// Headless Service over this tier (siblings: whose pulls count each parent's children).
    pub siblings: String,
    pub fanout: u32,
}

/// A tier's part in placement with `spec.placement.exposure: hostPort`: edges (locators on
/// the relay ports) and, when edges overflow to `tierAbove`, the tier that feeds them (taking
/// the overflow on host ports of its own, so it can share a node with an edge).
#[derive(Clone, Debug, PartialEq)]
pub struct TierPlacement {
    /// The node's ports the relay's RTMP and HTTP ports are opened on; the relay advertises
    /// the node's host (and these ports where they differ from its own).
    pub host_ports: Option<HostPorts>,
    /// Services whose addresses are the relay's `--placement-peer`s: its region's peers
    /// Service, then those of the regions it overflows to.
    pub peers: Vec<String>,
    /// `--overflow` steps as the relay spells them (`tier-above`, region names).
    pub overflow: Vec<String>,
}

/// Node ports of a tier exposed with `hostPort`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPorts {
    pub rtmp: u16,
    pub http: u16,
}

impl HostPorts {
    /// Edges: the relay ports themselves. The tier above them: the next port up (a reflector
    /// level), two up (the origin), so relays of different tiers can share a node.
    pub fn for_tier(kind: TierKind, cfg: &OperatorConfig) -> HostPorts {
        let shift = match kind {
            TierKind::Edge => 0,
            TierKind::Reflector(_) => 1,
            TierKind::Origin => 2,
        };
        HostPorts {
            rtmp: cfg.relay_rtmp_port.saturating_add(shift),
            http: cfg.relay_http_port.saturating_add(shift),
        }
    }
}

/// A headless Service over one tier's relays, Ready or not: the locators' view of a region's
/// edges, and the parents and siblings a child relay polls to choose its parent.
#[derive(Clone, Debug, PartialEq)]
pub struct PeersService {
    pub name: String,
    pub region: String,
    pub kind: TierKind,
}

/// The whole tree, origin first, then each region from its top tier down to its edges.
#[derive(Clone, Debug, PartialEq)]
pub struct TreePlan {
    pub tiers: Vec<TierPlan>,
    /// One per region's edges when they place viewers (`hostPort` exposure) or choose parents
    /// among reflectors, and one per reflector level that feeds children; no duplicates.
    pub peers_services: Vec<PeersService>,
}

impl TreePlan {
    /// The origin tier; `None` with external upstreams (`spec.upstream`).
    pub fn origin(&self) -> Option<&TierPlan> {
        self.tiers.first().filter(|t| t.kind == TierKind::Origin)
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
    // With external upstreams no origin runs here: they take its place in every list.
    let origin_name = spec
        .origin_region()
        .map(|region| tier_object_name(stream, region, TierKind::Origin));
    let external = crate::upstream::configured(spec);
    let mut tiers: Vec<TierPlan> = spec
        .origin
        .iter()
        .zip(&origin_name)
        .map(|(origin, name)| TierPlan {
            kind: TierKind::Origin,
            region: origin.region.clone(),
            name: name.clone(),
            replicas: 1,
            upstreams: Vec::new(),
            external: Vec::new(),
            node_selector: region_node_selector(spec, &origin.region, cfg),
            service_type: origin.service_type,
            placement: None,
            parents: None,
        })
        .collect();
    let mut peers_services: Vec<PeersService> = Vec::new();
    // (tier, its peers Service, region, kind) of each tier that takes a region's overflow.
    let mut overflow_tiers: Vec<(String, String, String, TierKind)> = Vec::new();
    let laid_out = laid_out_levels(spec);
    for (region, &levels_at_most) in spec.regions.iter().zip(&laid_out) {
        let (edges, reflectors) = match plan.region(&region.name) {
            Some(p) => (p.desired_edges, p.reflectors.clone()),
            None => (region.min_edges, Vec::new()),
        };
        let levels = levels_at_most.max(reflectors.len());
        let node_selector = region_node_selector(spec, &region.name, cfg);
        // Top level first: level N is fed by the origin, level 1 feeds the edges. A level the
        // plan does not use now has no relays: the tier below it passes over it to the origin.
        let mut parent: Option<(String, TierKind)> = None;
        for level in (1..=levels as u32).rev() {
            let kind = TierKind::Reflector(level);
            let name = tier_object_name(stream, &region.name, kind);
            let parents = parent_choice(stream, spec, &region.name, kind, parent.as_ref());
            let count = reflectors.get(level as usize - 1).copied().unwrap_or(0);
            tiers.push(TierPlan {
                kind,
                region: region.name.clone(),
                name: name.clone(),
                replicas: to_replicas(count),
                upstreams: upstreams(
                    parent.as_ref().map(|p| p.0.as_str()),
                    origin_name.as_deref(),
                ),
                external: external.clone(),
                node_selector: node_selector.clone(),
                service_type: ServiceType::ClusterIP,
                placement: None,
                parents,
            });
            parent = Some((name, kind));
        }
        let parents = parent_choice(stream, spec, &region.name, TierKind::Edge, parent.as_ref());
        let mut placement = edge_placement(stream, spec, &region.name, cfg);
        if let Some(p) = placement
            .as_mut()
            .filter(|p| p.overflow.iter().any(|o| o == "tier-above"))
        {
            // The tier feeding these edges takes their overflow: in the locators' view, and
            // exposed on host ports of its own.
            // The origin is always in view: it takes the overflow while the reflector level
            // above the edges runs no relays (the relay's locator prefers the region's
            // reflectors when it sees any).
            // Without an origin (external upstreams), only the reflectors take it.
            let mut above: Vec<(String, String, String, TierKind)> = origin_name
                .iter()
                .zip(spec.origin_region())
                .map(|(name, region)| {
                    let peers = peers_name(stream, region, TierKind::Origin);
                    (name.clone(), peers, region.to_string(), TierKind::Origin)
                })
                .collect();
            if let Some((name, kind)) = parent.clone() {
                above.insert(
                    0,
                    (
                        name,
                        peers_name(stream, &region.name, kind),
                        region.name.clone(),
                        kind,
                    ),
                );
            }
            for (i, a) in above.iter().enumerate() {
                p.peers.insert(1 + i, a.1.clone());
            }
            overflow_tiers.extend(above);
        }
        tiers.push(TierPlan {
            kind: TierKind::Edge,
            region: region.name.clone(),
            name: tier_object_name(stream, &region.name, TierKind::Edge),
            replicas: to_replicas(edges),
            upstreams: upstreams(
                parent.as_ref().map(|p| p.0.as_str()),
                origin_name.as_deref(),
            ),
            external: external.clone(),
            node_selector,
            service_type: spec.playback.service_type,
            placement,
            parents,
        });
    }
    // Headless Services: every region's edges with host ports (the locators' view), and both
    // sides of every parent choice, once each.
    let mut add = |name: String, region: &str, kind: TierKind| {
        if !peers_services.iter().any(|p| p.name == name) {
            peers_services.push(PeersService {
                name,
                region: region.to_string(),
                kind,
            });
        }
    };
    if spec.placement.exposure == Exposure::HostPort {
        for r in &spec.regions {
            add(peers_service_name(stream, &r.name), &r.name, TierKind::Edge);
        }
    }
    for (tier_name, peers, region, kind) in &overflow_tiers {
        add(peers.clone(), region, *kind);
        if let Some(t) = tiers.iter_mut().find(|t| &t.name == tier_name) {
            t.placement = Some(TierPlacement {
                host_ports: Some(HostPorts::for_tier(*kind, cfg)),
                peers: Vec::new(),
                overflow: Vec::new(),
            });
        }
    }
    for t in &tiers {
        if let Some(p) = &t.parents {
            let above = tiers
                .iter()
                .find(|a| peers_name(stream, &a.region, a.kind) == p.parents)
                .map(|a| (a.region.clone(), a.kind));
            if let Some((region, kind)) = above {
                add(p.parents.clone(), &region, kind);
            }
            add(p.siblings.clone(), &t.region, t.kind);
        }
    }
    TreePlan {
        tiers,
        peers_services,
    }
}

/// Reflector levels laid out per region (same order as `spec.regions`): those the planner's
/// tree has with every region at its `maxEdges` (at fewer edges it needs no more; should it
/// ever, `plan_tiers` lays out what the plan uses). Laying them out whether or not the plan
/// uses them now keeps every tier's pod template (its upstreams, parents and placement peers)
/// the same while the plan adds and removes reflectors: a changed template would make
/// Kubernetes replace every edge, cutting their viewers, in the middle of a crowd.
fn laid_out_levels(spec: &StreamSpec) -> Vec<usize> {
    let at_max: Vec<u32> = spec.regions.iter().map(|r| r.max_edges).collect();
    surge_planner::build_tree(&at_max, spec.tree.fanout)
        .reflectors
        .iter()
        .map(Vec::len)
        .collect()
}

/// Name of the headless Service over a tier's relays: the region's `-peers` Service for edges
/// (the locators' view too), `<tier>-peers` for reflector levels.
pub fn peers_name(stream: &str, region: &str, kind: TierKind) -> String {
    match kind {
        TierKind::Edge => peers_service_name(stream, region),
        _ => format!("{}-peers", tier_object_name(stream, region, kind)),
    }
}

/// A tier fed by a reflector level chooses among that level's relays by room; fed by the
/// origin (one relay), there is nothing to choose.
fn parent_choice(
    stream: &str,
    spec: &StreamSpec,
    region: &str,
    kind: TierKind,
    parent: Option<&(String, TierKind)>,
) -> Option<ParentChoice> {
    let (_, parent_kind) = parent?;
    Some(ParentChoice {
        parents: peers_name(stream, region, *parent_kind),
        siblings: peers_name(stream, region, kind),
        fanout: spec.tree.fanout,
    })
}

/// An edge's placement: none behind a Service (a locator's redirect would name a pod IP the
/// viewer cannot reach, so the Service and the edges' readiness spread viewers); with host
/// ports, a locator over its region's edges, the tier above them when it overflows there
/// (added by the caller), and the edges of each region it overflows to.
fn edge_placement(
    stream: &str,
    spec: &StreamSpec,
    region: &str,
    cfg: &OperatorConfig,
) -> Option<TierPlacement> {
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
        host_ports: Some(HostPorts::for_tier(TierKind::Edge, cfg)),
        peers,
        overflow,
    })
}

fn upstreams(parent: Option<&str>, origin: Option<&str>) -> Vec<String> {
    parent
        .into_iter()
        .chain(origin)
        .map(str::to_string)
        .collect()
}

fn to_replicas(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
