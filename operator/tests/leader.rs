//! Leader election against a fake Lease API (an in-process HTTP service holding one Lease):
//! the leader keeps renewing while the API answers and stops acting at the renew deadline,
//! before the Lease expires, when the API hangs or fails; a standby takes over only later.
//!
//! The tests run on tokio's paused clock and the kube client talks to the service without a
//! socket, so every timing below is exact virtual time: a busy machine cannot stretch a window.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use serde_json::{Value, json};
use surge_operator::leader::{LeaderElector, Timing};
use tokio::sync::Mutex;
use tokio::time::Instant;

const NS: &str = "test";
const LEASE: &str = "surge";
/// Renew deadline 2 s, retry period 400 ms, call timeout 800 ms.
const LEASE_DURATION: Duration = Duration::from_secs(3);

/// The one Lease, shared by every endpoint (an API server seen through several connections).
#[derive(Default)]
struct Store {
    lease: Mutex<Option<Value>>,
    version: AtomicUsize,
    writes: AtomicUsize,
}

/// One endpoint onto the store whose behaviour a test can break.
struct Endpoint {
    store: Arc<Store>,
    /// Never answer (a hung connection or an API server that stopped responding).
    hang: AtomicBool,
    /// Answer every request with HTTP 500.
    fail: AtomicBool,
}

impl Endpoint {
    async fn misbehave(&self) -> Option<Response> {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.fail.load(Ordering::SeqCst) {
            return Some(status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError"));
        }
        None
    }
}

fn status(code: StatusCode, reason: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": reason, "reason": reason, "code": code.as_u16()
    });
    (code, Json(body)).into_response()
}

async fn store_lease(ep: &Endpoint, mut lease: Value) -> Value {
    let rv = ep.store.version.fetch_add(1, Ordering::SeqCst) + 1;
    lease["metadata"]["resourceVersion"] = json!(rv.to_string());
    lease["metadata"]["namespace"] = json!(NS);
    ep.store.writes.fetch_add(1, Ordering::SeqCst);
    *ep.store.lease.lock().await = Some(lease.clone());
    lease
}

async fn get_lease(State(ep): State<Arc<Endpoint>>) -> Response {
    if let Some(r) = ep.misbehave().await {
        return r;
    }
    match ep.store.lease.lock().await.clone() {
        Some(lease) => Json(lease).into_response(),
        None => status(StatusCode::NOT_FOUND, "NotFound"),
    }
}

async fn create_lease(State(ep): State<Arc<Endpoint>>, Json(lease): Json<Value>) -> Response {
    if let Some(r) = ep.misbehave().await {
        return r;
    }
    if ep.store.lease.lock().await.is_some() {
        return status(StatusCode::CONFLICT, "AlreadyExists");
    }
    (StatusCode::CREATED, Json(store_lease(&ep, lease).await)).into_response()
}

async fn replace_lease(State(ep): State<Arc<Endpoint>>, Json(lease): Json<Value>) -> Response {
    if let Some(r) = ep.misbehave().await {
        return r;
    }
    // Optimistic concurrency, as the API server does it.
    let current = ep.store.lease.lock().await.clone();
    let current_rv = current
        .as_ref()
        .map(|l| l["metadata"]["resourceVersion"].clone());
    if current_rv != Some(lease["metadata"]["resourceVersion"].clone()) {
        return status(StatusCode::CONFLICT, "Conflict");
    }
    Json(store_lease(&ep, lease).await).into_response()
}

/// Serves the Lease API for `store` in process; returns the endpoint and a client for it.
fn endpoint(store: Arc<Store>) -> (Arc<Endpoint>, Api<Lease>) {
    let ep = Arc::new(Endpoint {
        store,
        hang: AtomicBool::new(false),
        fail: AtomicBool::new(false),
    });
    let base = format!("/apis/coordination.k8s.io/v1/namespaces/{NS}/leases");
    let app = Router::new()
        .route(&base, post(create_lease))
        .route(
            &format!("{base}/{{name}}"),
            get(get_lease).put(replace_lease),
        )
        .with_state(ep.clone());
    // No socket: kube's client calls the router as a tower service, so no real IO runs
    // beside the paused clock.
    (ep, Api::namespaced(Client::new(app, NS), NS))
}

async fn holder(store: &Store) -> Option<String> {
    store
        .lease
        .lock()
        .await
        .as_ref()
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(|s| s.to_string()))
}

async fn leader(store: Arc<Store>, identity: &str) -> (Arc<Endpoint>, LeaderElector) {
    let (ep, api) = endpoint(store);
    let elector = LeaderElector::new(api, LEASE, identity, LEASE_DURATION);
    // A free Lease is taken by the first attempt, with no wait at all.
    let started = Instant::now();
    tokio::time::timeout(timing().call_timeout, elector.acquire())
        .await
        .expect("acquires a free lease");
    assert_eq!(started.elapsed(), Duration::ZERO, "a free lease took time");
    (ep, elector)
}

fn timing() -> Timing {
    Timing::for_lease(LEASE_DURATION)
}

#[tokio::test(start_paused = true)]
async fn leader_keeps_renewing_while_the_api_answers() {
    let store = Arc::new(Store::default());
    let (_ep, a) = leader(store.clone(), "a").await;
    let writes = store.writes.load(Ordering::SeqCst);
    let stopped = tokio::time::timeout(LEASE_DURATION * 2, a.keep_renewing()).await;
    assert!(stopped.is_err(), "a healthy leader gave up its lease");
    // One renewal per retry period (400 ms): 15 in two lease durations (6 s), the last one
    // possibly cut off by the timeout.
    let renewals = store.writes.load(Ordering::SeqCst) - writes;
    let expected = (LEASE_DURATION * 2).as_millis() / timing().retry_period.as_millis();
    assert!(
        renewals as u128 >= expected - 1,
        "only {renewals} renewals in two lease durations (one per retry period: {expected})"
    );
    assert_eq!(holder(&store).await.as_deref(), Some("a"));
}

/// Runs `keep_renewing` after breaking the API; returns how long after the last successful
/// renewal the leader stopped.
async fn stop_time(break_api: impl FnOnce(&Endpoint)) -> Duration {
    let store = Arc::new(Store::default());
    let (ep, a) = leader(store, "a").await;
    // The last renewal started no earlier than this.
    let renewed = Instant::now();
    break_api(&ep);
    tokio::time::timeout(LEASE_DURATION * 2, a.keep_renewing())
        .await
        .expect("the leader did not stop although renewals kept failing");
    renewed.elapsed()
}

/// The paused clock's only slack: timers fire on whole milliseconds.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// The leader retries until the renew deadline (a failed or hung renewal is not the end),
/// and stops then, before the lease expires for the others.
fn assert_stops_at_the_renew_deadline(after: Duration) {
    let deadline = timing().renew_deadline;
    assert!(
        after + TIMER_RESOLUTION >= deadline,
        "gave up {after:?} after the last renewal, before the renew deadline {deadline:?} \
         (renewals should be retried until then)"
    );
    assert!(
        after <= deadline + TIMER_RESOLUTION,
        "stopped {after:?} after the last renewal (renew deadline {deadline:?})"
    );
    assert!(
        after < LEASE_DURATION,
        "stopped only after the lease expired ({after:?})"
    );
}

#[tokio::test(start_paused = true)]
async fn leader_stops_at_the_renew_deadline_when_the_api_hangs() {
    let after = stop_time(|ep| ep.hang.store(true, Ordering::SeqCst)).await;
    assert_stops_at_the_renew_deadline(after);
}

#[tokio::test(start_paused = true)]
async fn leader_stops_at_the_renew_deadline_when_the_api_fails() {
    let after = stop_time(|ep| ep.fail.store(true, Ordering::SeqCst)).await;
    assert_stops_at_the_renew_deadline(after);
}

/// The safety property: when the leader's connection hangs, it has stopped acting before the
/// standby (whose connection works) takes the expired Lease, by at least the margin the
/// timing is built for (lease duration minus renew deadline).
#[tokio::test(start_paused = true)]
async fn old_leader_stops_before_a_standby_takes_the_lease() {
    let store = Arc::new(Store::default());
    let (ep_a, a) = leader(store.clone(), "a").await;
    let (_ep_b, api_b) = endpoint(store.clone());
    let b = LeaderElector::new(api_b, LEASE, "b", LEASE_DURATION);
    ep_a.hang.store(true, Ordering::SeqCst);

    let a_stops = async {
        a.keep_renewing().await;
        Instant::now()
    };
    let b_leads = async {
        b.acquire().await;
        Instant::now()
    };
    let (a_stopped, b_leads_at) =
        tokio::time::timeout(LEASE_DURATION * 3, async { tokio::join!(a_stops, b_leads) })
            .await
            .expect("the old leader stopped and the standby took over");
    let margin = LEASE_DURATION - timing().renew_deadline;
    assert!(
        a_stopped + margin <= b_leads_at,
        "the standby led {:?} after the old leader stopped (at least {margin:?} expected)",
        b_leads_at.saturating_duration_since(a_stopped)
    );
    assert_eq!(holder(&store).await.as_deref(), Some("b"));
}
