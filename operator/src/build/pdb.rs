//! The PodDisruptionBudget of one tier, so that node drains (voluntary evictions) take relays
//! down no faster than the tree can lose them. Deletions by the operator itself (scale-down)
//! are not evictions and are not limited by it.
//!
//! - Origin: `maxUnavailable: 0`. Its one relay holds the broadcaster's connection; evicting it
//!   cuts the live stream for every viewer. A drain of its node therefore waits (kubectl drain
//!   retries) until someone moves the origin deliberately: see "Node drains" in charts/surge/README.md.
//! - Reflectors: `maxUnavailable: 1`. Each feeds up to `fanout` edges, which fall back to the
//!   origin while their parent is away.
//! - Edges: `maxUnavailable: 10%` (at least one, rounded up). An evicted edge's viewers
//!   reconnect through the playback Service to the others; large regions may drain several
//!   nodes at once.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Target;
use crate::labels::{TierKind, tier_labels, tier_selector};
use crate::tree::TierPlan;

/// How many of a tier's relays may be evicted at once.
pub fn max_unavailable(kind: TierKind) -> IntOrString {
    match kind {
        TierKind::Origin => IntOrString::Int(0),
        TierKind::Reflector(_) => IntOrString::Int(1),
        TierKind::Edge => IntOrString::String("10%".to_string()),
    }
}

/// The PodDisruptionBudget of `tier` (same name as its Deployment, owned by the Stream).
pub fn build_pdb(target: &Target, tier: &TierPlan) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(tier.name.clone()),
            namespace: Some(target.namespace.clone()),
            labels: Some(tier_labels(&target.stream, &tier.region, tier.kind)),
            owner_references: Some(vec![target.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(max_unavailable(tier.kind)),
            selector: Some(LabelSelector {
                match_labels: Some(tier_selector(&target.stream, &tier.region, tier.kind)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_never_evicted_and_other_tiers_lose_few_relays_at_once() {
        assert_eq!(max_unavailable(TierKind::Origin), IntOrString::Int(0));
        assert_eq!(max_unavailable(TierKind::Reflector(2)), IntOrString::Int(1));
        assert_eq!(
            max_unavailable(TierKind::Edge),
            IntOrString::String("10%".to_string())
        );
    }
}
