//! Prometheus metrics and the HTTP endpoint (`/metrics`, `/healthz`, `/readyz`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `Service` or `Deployment`.
    pub kind: String,
}

impl KindLabels {
    pub fn new(kind: &str) -> Self {
        KindLabels { kind: kind.into() }
    }
}

/// The kinds of object the operator applies (their apply-error series start at 0).
pub const APPLIED_KINDS: [&str; 2] = ["Service", "Deployment"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabels {
    pub namespace: String,
    pub stream: String,
    pub region: String,
    pub tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionLabels {
    pub namespace: String,
    pub stream: String,
    pub region: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub namespace: String,
    pub stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    pub namespace: String,
    pub stream: String,
    /// The condition's type: `Ready`, `Progressing`, `Degraded`, `FlashCrowd`.
    pub condition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    component: String,
    version: String,
}

/// The operator's version, as `surge_build_info` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// All operator metrics.
pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ResultLabels, Counter>,
    pub reconcile_errors: Counter,
    /// Objects the API server refused to create or update, by kind (the reconcile goes on).
    pub apply_errors: Family<KindLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub scrape_errors: Counter,
    pub relays_desired: Family<TierLabels, Gauge>,
    pub relays_ready: Family<TierLabels, Gauge>,
    pub viewers: Family<RegionLabels, Gauge>,
    /// Viewers the planner expects one lead time ahead, per Stream and region.
    pub forecast_viewers: Family<RegionLabels, Gauge>,
    /// Viewer growth per second, all regions of a Stream.
    pub growth: Family<StreamLabels, Gauge<f64, AtomicU64>>,
    /// 1 while a Stream's condition is True, else 0.
    pub conditions: Family<ConditionLabels, Gauge>,
    /// Set once this replica leads and the controller runs.
    leading: AtomicBool,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut root = Registry::default();
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                component: "operator".into(),
                version: VERSION.into(),
            })
            .set(1);
        root.register(
            "surge_build_info",
            "1, labelled with the component and its version",
            build_info,
        );
        let registry = root.sub_registry_with_prefix("surge_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by result (ok, error)",
            reconciles.clone(),
        );
        let reconcile_errors = Counter::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed",
            reconcile_errors.clone(),
        );
        let apply_errors = Family::<KindLabels, Counter>::default();
        for kind in APPLIED_KINDS {
            let _ = apply_errors.get_or_create(&KindLabels::new(kind));
        }
        registry.register(
            "apply_errors",
            "Services and Deployments the API server refused to create or update, by kind",
            apply_errors.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register(
            "reconcile_duration_seconds",
            "Time of one reconcile, scrapes included",
            reconcile_duration.clone(),
        );
        let scrape_errors = Counter::default();
        registry.register(
            "relay_scrape_errors",
            "Relay /api/v1/streams requests that failed",
            scrape_errors.clone(),
        );
        let relays_desired = Family::<TierLabels, Gauge>::default();
        registry.register(
            "relays_desired",
            "Relays asked for per Stream, region and tier",
            relays_desired.clone(),
        );
        let relays_ready = Family::<TierLabels, Gauge>::default();
        registry.register(
            "relays_ready",
            "Ready relays per Stream, region and tier",
            relays_ready.clone(),
        );
        let viewers = Family::<RegionLabels, Gauge>::default();
        registry.register(
            "viewers",
            "Viewers per Stream and region, as scraped from the edges",
            viewers.clone(),
        );
        let forecast_viewers = Family::<RegionLabels, Gauge>::default();
        registry.register(
            "forecast_viewers",
            "Viewers the planner expects one lead time ahead, per Stream and region",
            forecast_viewers.clone(),
        );
        let growth = Family::<StreamLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "viewer_growth_per_second",
            "Viewer growth per second the planner measured, all regions of a Stream",
            growth.clone(),
        );
        let conditions = Family::<ConditionLabels, Gauge>::default();
        registry.register(
            "stream_condition",
            "1 while the Stream's condition (Ready, Progressing, Degraded, FlashCrowd) is True, else 0",
            conditions.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease and reconciles, 0 on a standby",
            leader.clone(),
        );
        Metrics {
            registry: root,
            reconciles,
            reconcile_errors,
            apply_errors,
            reconcile_duration,
            scrape_errors,
            relays_desired,
            relays_ready,
            viewers,
            forecast_viewers,
            growth,
            conditions,
            leading: AtomicBool::new(false),
            leader,
        }
    }

    /// Marks this replica as the leader (it reconciles from now on).
    pub fn set_leading(&self) {
        self.leading.store(true, Ordering::Relaxed);
        self.leader.set(1);
    }

    pub fn is_leading(&self) -> bool {
        self.leading.load(Ordering::Relaxed)
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

async fn metrics_handler(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.is_leading() {
        (StatusCode::OK, "leading\n")
    } else {
        // A standby replica is healthy but does not reconcile.
        (StatusCode::OK, "standby\n")
    }
}

pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(metrics)
}

/// Serves the endpoints until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for /metrics: {e}"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %bound, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, router(metrics)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_errors_are_counted_by_kind_from_zero() {
        let m = Metrics::new();
        let text = m.encode();
        assert!(
            text.contains("surge_operator_apply_errors_total{kind=\"Service\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("surge_operator_apply_errors_total{kind=\"Deployment\"} 0"),
            "{text}"
        );
        m.apply_errors
            .get_or_create(&KindLabels::new("Service"))
            .inc();
        assert!(
            m.encode()
                .contains("surge_operator_apply_errors_total{kind=\"Service\"} 1")
        );
    }
}
