//! The desired relay tree of a Stream: one entry per tier (origin; per region the reflector
//! levels and the edges), with replica counts from the plan, parents, and placement. Pure.

use std::collections::BTreeMap;

use crate::config::OperatorConfig;
use crate::crd::{ServiceType, StreamSpec};
use crate::labels::{TierKind, tier_object_name};
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
}

/// The whole tree, origin first, then each region from its top tier down to its edges.
#[derive(Clone, Debug, PartialEq)]
pub struct TreePlan {
    pub tiers: Vec<TierPlan>,
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
        });
    }
    TreePlan { tiers }
}

fn upstreams(parent: Option<&str>, origin: &str) -> Vec<String> {
    let mut out: Vec<String> = parent.map(str::to_string).into_iter().collect();
    out.push(origin.to_string());
    out
}

fn to_replicas(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
