//! Leader election against a fake Lease API (a small HTTP server holding one Lease): the
//! leader keeps renewing while the API answers and stops acting within the renew deadline,
//! before the Lease expires, when the API hangs or fails; a standby takes over only later.

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
use kube::{Api, Client, Config};
use serde_json::{Value, json};
use surge_operator::leader::LeaderElector;
use tokio::sync::Mutex;
use tokio::time::Instant;

const NS: &str = "test";
const LEASE: &str = "surge";
/// Renew deadline 2 s, retry period 400 ms, call timeout 800 ms.
const LEASE_DURATION: Duration = Duration::from_secs(3);

/// The one Lease, shared by every server (an API server seen through several connections).
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

/// Serves the Lease API for `store` on a free loopback port; returns the endpoint and a
/// client for it.
async fn endpoint(store: Arc<Store>) -> (Arc<Endpoint>, Api<Lease>) {
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = Config::new(format!("http://{addr}").parse().expect("server URL"));
    let client = Client::try_from(config).expect("client for the fake API");
    (ep, Api::namespaced(client, NS))
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
    let (ep, api) = endpoint(store).await;
    let elector = LeaderElector::new(api, LEASE, identity, LEASE_DURATION);
    tokio::time::timeout(Duration::from_secs(5), elector.acquire())
        .await
        .expect("acquires a free lease");
    (ep, elector)
}

#[tokio::test]
async fn leader_keeps_renewing_while_the_api_answers() {
    let store = Arc::new(Store::default());
    let (_ep, a) = leader(store.clone(), "a").await;
    let writes = store.writes.load(Ordering::SeqCst);
    let stopped = tokio::time::timeout(LEASE_DURATION * 2, a.keep_renewing()).await;
    assert!(stopped.is_err(), "a healthy leader gave up its lease");
    // Renewals every retry period (400 ms) over 6 s: well over one per lease duration.
    let renewals = store.writes.load(Ordering::SeqCst) - writes;
    assert!(
        renewals >= 6,
        "only {renewals} renewals in two lease durations"
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

#[tokio::test]
async fn leader_stops_within_the_renew_deadline_when_the_api_hangs() {
    let timing = surge_operator::leader::Timing::for_lease(LEASE_DURATION);
    let after = stop_time(|ep| ep.hang.store(true, Ordering::SeqCst)).await;
    assert!(
        after <= timing.renew_deadline + Duration::from_millis(300),
        "stopped {after:?} after the last renewal (renew deadline {:?})",
        timing.renew_deadline
    );
    assert!(
        after < LEASE_DURATION,
        "stopped only after the lease expired ({after:?})"
    );
}

#[tokio::test]
async fn leader_stops_within_the_renew_deadline_when_the_api_fails() {
    let timing = surge_operator::leader::Timing::for_lease(LEASE_DURATION);
    let after = stop_time(|ep| ep.fail.store(true, Ordering::SeqCst)).await;
    assert!(
        after >= timing.renew_deadline - Duration::from_millis(100),
        "gave up after {after:?}, before the renew deadline (retries should continue)"
    );
    assert!(
        after <= timing.renew_deadline + Duration::from_millis(300),
        "stopped {after:?} after the last renewal (renew deadline {:?})",
        timing.renew_deadline
    );
}

/// The safety property: when the leader's connection hangs, it has stopped acting before the
/// standby (whose connection works) takes the expired Lease.
#[tokio::test]
async fn old_leader_stops_before_a_standby_takes_the_lease() {
    let store = Arc::new(Store::default());
    let (ep_a, a) = leader(store.clone(), "a").await;
    let (_ep_b, api_b) = endpoint(store.clone()).await;
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
    assert!(
        a_stopped < b_leads_at,
        "the standby led {:?} before the old leader stopped",
        a_stopped - b_leads_at
    );
    assert_eq!(holder(&store).await.as_deref(), Some("b"));
}
