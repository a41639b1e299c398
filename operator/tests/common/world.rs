//! A small world around `decide` for tests: a Stream's children as the API server would list
//! them, what its relays answer, and the IO of reconcile.rs played back: what is decided is
//! applied (the Deployments take the planned replicas, Ready at once), and the memory and status
//! carry over to the next reconcile.

use std::collections::BTreeMap;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use surge_operator::build::Target;
use surge_operator::config::OperatorConfig;
use surge_operator::crd::{Stream, StreamStatus};
use surge_operator::decide::{
    Applied, Clock, Decision, Input, Note, Outcome, Planned, StreamMemory, decide,
};
use surge_operator::labels::{TierKind, tier_object_name};
use surge_operator::observe::{DeploymentCounts, DeploymentView, Observed, PodView};

use super::target;

/// The operator's default scrape interval: one reconcile each.
pub const STEP_S: f64 = 5.0;

/// A Stream's children as the API server would list them, and what its relays answer.
pub struct World {
    pub stream: Stream,
    pub target: Target,
    pub cfg: OperatorConfig,
    pub memory: StreamMemory,
    /// Deployments by name: (region, tier, replicas); all replicas are Ready.
    pub deployments: BTreeMap<String, (String, TierKind, i32)>,
    /// Edge pods whose scrape fails, with why.
    pub unreachable: BTreeMap<String, String>,
    /// What the next apply reports as refused.
    pub refusals: Vec<String>,
    /// Pods (`<deployment>-<i>`) and the upstream each reports it pulls from now.
    pub connected: BTreeMap<String, String>,
    /// When set, edges also report their load, holding this fraction of their
    /// `--max-viewers` (a relay that predates `relay.load` reports none).
    pub edge_capacity: Option<f64>,
}

/// What one reconcile decided.
pub struct Reconciled {
    pub outcome: Outcome,
    pub planned: Option<Planned>,
}

impl Reconciled {
    pub fn events(&self) -> &[Note] {
        &self.outcome.events
    }

    pub fn status(&self) -> &StreamStatus {
        self.outcome.status.as_ref().expect("a status to write")
    }

    pub fn planned(&self) -> &Planned {
        self.planned.as_ref().expect("a planned tree")
    }
}

impl World {
    /// `stream` with the origin and one edge per region already running (created earlier).
    pub fn new(stream: Stream) -> World {
        let name = stream.name_any();
        let mut deployments = BTreeMap::new();
        if let Some(origin) = stream.spec.origin_region() {
            deployments.insert(
                tier_object_name(&name, origin, TierKind::Origin),
                (origin.to_string(), TierKind::Origin, 1),
            );
        }
        for r in &stream.spec.regions {
            deployments.insert(
                tier_object_name(&name, &r.name, TierKind::Edge),
                (r.name.clone(), TierKind::Edge, 1),
            );
        }
        World {
            target: target(&stream),
            stream,
            cfg: OperatorConfig::default(),
            memory: StreamMemory::default(),
            deployments,
            unreachable: BTreeMap::new(),
            refusals: Vec::new(),
            connected: BTreeMap::new(),
            edge_capacity: None,
        }
    }

    pub fn region(&self) -> String {
        self.stream.spec.regions[0].name.clone()
    }

    pub fn edge(&self) -> String {
        tier_object_name(&self.target.stream, &self.region(), TierKind::Edge)
    }

    /// The listing: Deployments with their counts, one Ready pod per replica; `viewers` of the
    /// first region spread over its edge pods (the first takes the remainder).
    pub fn observed(&self, viewers: u64) -> Observed {
        let mut observed = Observed {
            signing_key: Some(signing_key()),
            upstreams: self.connected.clone(),
            ..Observed::default()
        };
        for (name, (region, tier, replicas)) in &self.deployments {
            observed.deployments.push(DeploymentView {
                name: name.clone(),
                tier: Some((region.clone(), *tier)),
                counts: DeploymentCounts {
                    desired: *replicas,
                    ready: *replicas,
                },
            });
            let edge_of_first = *tier == TierKind::Edge && *region == self.region();
            let n = u64::try_from(*replicas).expect("replicas");
            for i in 0..n {
                let pod = format!("{name}-{i}");
                observed.pods.push(PodView {
                    name: pod.clone(),
                    tier: *tier,
                    region: region.clone(),
                    ip: Some(format!("10.0.0.{i}")),
                    ready: true,
                    ready_after_seconds: Some(10.0),
                    deletion_cost: None,
                    terminating: false,
                    node: None,
                    advertise_host: None,
                });
                let share = if !edge_of_first {
                    0
                } else if i == 0 {
                    viewers - viewers / n * (n - 1)
                } else {
                    viewers / n
                };
                let answer = match self.unreachable.get(&pod) {
                    Some(why) => Err(why.clone()),
                    None => Ok(share),
                };
                if let (Some(factor), true, Ok(_)) =
                    (self.edge_capacity, *tier == TierKind::Edge, &answer)
                {
                    let holds = surge_operator::build::deployment::max_viewers(
                        surge_operator::sizing::viewers_per_edge(&self.stream.spec),
                    ) as f64
                        * factor;
                    let room = surge_operator::quality::RelayRoom {
                        viewers: share,
                        load: share as f64 / holds,
                    };
                    observed.rooms.insert(pod.clone(), room);
                }
                observed.scrapes.insert(pod, answer);
            }
        }
        observed
    }

    /// One reconcile at `t_s` with `viewers` watching: decide, apply (the Deployments take the
    /// planned replicas; `refusals` are what the API server refused), settle; the memory and
    /// status carry over.
    pub fn reconcile(&mut self, t_s: f64, viewers: u64) -> Reconciled {
        let observed = self.observed(viewers);
        let input = Input {
            stream: &self.stream,
            target: &self.target,
            observed: &observed,
            clock: clock(t_s),
            cfg: &self.cfg,
        };
        let (outcome, planned) = match decide(&input, &self.memory) {
            Decision::Done(outcome) => (outcome, None),
            Decision::Apply(planned) => {
                let applied = Applied {
                    refused: self.refusals.clone(),
                    removed_deployments: Vec::new(),
                };
                (planned.clone().settle(&input, &applied), Some(planned))
            }
        };
        if let Some(p) = &planned {
            for t in &p.tree.tiers {
                self.deployments
                    .insert(t.name.clone(), (t.region.clone(), t.kind, t.replicas));
            }
        }
        self.memory = outcome.memory.clone();
        if let Some(status) = &outcome.status {
            self.stream.status = Some(status.clone());
        }
        Reconciled { outcome, planned }
    }

    pub fn replicas(&self, name: &str) -> i32 {
        self.deployments[name].2
    }
}

pub fn clock(t_s: f64) -> Clock {
    Clock {
        seconds: t_s,
        now: Timestamp::from_second(1_700_000_000).expect("timestamp")
            + SignedDuration::from_secs_f64(t_s),
    }
}

pub fn condition(status: &StreamStatus, type_: &str) -> (String, String, String) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("condition {type_} present"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

pub fn with_reason<'a>(events: &'a [Note], reason: &str) -> Vec<&'a Note> {
    events.iter().filter(|e| e.reason == reason).collect()
}

/// The signing key Secret as gather reads it (an openssl-made Ed25519 key).
pub fn signing_key() -> surge_operator::integrity::SecretRead {
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIFjfaxQn836f1im3Oe6zm0hPpqIbt6rX9bWLG59C0e7\n-----END PRIVATE KEY-----\n";
    surge_operator::integrity::SecretRead::Data(std::collections::BTreeMap::from([(
        surge_operator::integrity::SIGNING_ITEM.to_string(),
        KEY.as_bytes().to_vec(),
    )]))
}
