//! `surge-operator local`'s HTTP API: `GET /api/v1/streams` (each Stream's spec, its status as
//! the Kubernetes Stream's `status` would read, the relays running for it and its Services'
//! stand-ins), plus the
//! operator's `/metrics`, `/healthz` and `/readyz`.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use kube::ResourceExt;
use serde::Serialize;

use super::driver::LocalStream;
use super::status::{RelayStatus, ServiceStatus};
use crate::context::lock;
use crate::crd::{StreamSpec, StreamStatus};
use crate::metrics::{self, Metrics};

/// Path of the Streams answer (as the relays' own stats path, by design).
pub const STREAMS_PATH: &str = "/api/v1/streams";

/// One Stream in the answer.
#[derive(Serialize)]
pub struct StreamAnswer {
    pub name: String,
    pub namespace: String,
    pub spec: StreamSpec,
    /// `null` until the first reconcile.
    pub status: Option<StreamStatus>,
    pub relays: Vec<RelayAnswer>,
    /// The tier Services' local stand-ins (what status.endpoints name).
    pub services: Vec<ServiceAnswer>,
}

/// A Service's stand-in: where it listens and the Ready relays it forwards to now.
#[derive(Serialize)]
pub struct ServiceAnswer {
    pub name: String,
    pub address: String,
    /// `[listen port, relay port]` pairs.
    pub ports: Vec<(u16, u16)>,
    pub backends: Vec<String>,
}

impl From<&ServiceStatus> for ServiceAnswer {
    fn from(s: &ServiceStatus) -> Self {
        ServiceAnswer {
            name: s.name.clone(),
            address: s.address.to_string(),
            ports: s.ports.clone(),
            backends: s.backends.iter().map(|b| b.to_string()).collect(),
        }
    }
}

/// One relay process, draining ones included.
#[derive(Serialize)]
pub struct RelayAnswer {
    pub name: String,
    pub deployment: String,
    pub region: String,
    /// `origin`, `edge` or `reflector-N`.
    pub tier: String,
    pub rtmp: String,
    pub http: String,
    /// Where `/metrics`, `/readyz` and `/api/v1/streams` answer.
    pub admin: String,
    pub pid: u32,
    pub ready: bool,
    pub draining: bool,
    pub log: String,
}

impl From<&RelayStatus> for RelayAnswer {
    fn from(r: &RelayStatus) -> Self {
        RelayAnswer {
            name: r.name.clone(),
            deployment: r.deployment.clone(),
            region: r.region.clone(),
            tier: r.tier.to_string(),
            rtmp: r.rtmp.to_string(),
            http: r.http.to_string(),
            admin: r.admin.to_string(),
            pid: r.pid,
            ready: r.ready,
            draining: r.draining,
            log: r.log.display().to_string(),
        }
    }
}

fn answer(local: &LocalStream) -> StreamAnswer {
    let fleet = local.fleet.observe();
    StreamAnswer {
        name: local.stream.name_any(),
        namespace: local.target.namespace.clone(),
        spec: local.stream.spec.clone(),
        status: lock(&local.status).clone(),
        relays: fleet.relays().map(RelayAnswer::from).collect(),
        services: fleet.services.iter().map(ServiceAnswer::from).collect(),
    }
}

async fn streams(State(all): State<Arc<Vec<Arc<LocalStream>>>>) -> Json<Vec<StreamAnswer>> {
    Json(all.iter().map(|s| answer(s)).collect())
}

/// Path of the relays as Prometheus HTTP service discovery reads them (`http_sd_configs`).
pub const SCRAPE_TARGETS_PATH: &str = "/api/v1/scrape-targets";

/// One target group of Prometheus' HTTP service discovery: a relay's admin address, with the
/// `namespace` and `pod` labels a PodMonitor gives a relay pod's series.
#[derive(Serialize, Debug, PartialEq)]
pub struct TargetGroup {
    pub targets: Vec<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// One group per relay of `relays` (namespace, relay), draining ones included: their series
/// end with them.
pub fn target_groups(relays: impl Iterator<Item = (String, RelayAnswer)>) -> Vec<TargetGroup> {
    relays
        .map(|(namespace, relay)| TargetGroup {
            targets: vec![relay.admin],
            labels: [
                ("namespace".to_string(), namespace),
                ("pod".to_string(), relay.name),
            ]
            .into_iter()
            .collect(),
        })
        .collect()
}

async fn scrape_targets(State(all): State<Arc<Vec<Arc<LocalStream>>>>) -> Json<Vec<TargetGroup>> {
    // The fleet's relays only: Prometheus asks every few seconds, and the Stream's spec,
    // status and Services are not part of a target list.
    let relays = all.iter().flat_map(|s| {
        let namespace = s.target.namespace.clone();
        let relays: Vec<RelayAnswer> = s.fleet.observe().relays().map(RelayAnswer::from).collect();
        relays.into_iter().map(move |r| (namespace.clone(), r))
    });
    Json(target_groups(relays))
}

/// The API's routes over `streams`, with the operator's metrics endpoints.
pub fn router(streams_: Arc<Vec<Arc<LocalStream>>>, metrics: Arc<Metrics>) -> Router {
    let api = Router::new()
        .route(STREAMS_PATH, get(streams))
        .route(SCRAPE_TARGETS_PATH, get(scrape_targets))
        .with_state(streams_);
    metrics::router(metrics).merge(api)
}
