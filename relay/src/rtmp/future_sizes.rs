//! Every open connection keeps its `serve` future (and, while it plays, its `write_loop`
//! future) alive for its whole life, so their sizes are memory per viewer. These tests print
//! the sizes (`cargo test -p surge-relay future_sizes -- --nocapture`) and hold the bounds
//! docs/BENCHMARKS.md reports: the handshake state is boxed and freed once it completes and
//! the writev iovec array lives only inside one poll. Before that the futures were 5,168 and
//! 1,952 bytes; a change that brings such state back fails here.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::connection::{RtmpSettings, serve, write_loop};
use crate::hub::HubConfig;
use crate::metrics::Metrics;
use crate::registry::{Registry, RegistrySettings};
use surge_wire::ChunkLimits;

/// Promised upper bounds, in bytes (measured 1,848 and 960 when the bounds were set; the
/// margin leaves room for ordinary changes, not for a buffer or a handshake kept inline).
const SERVE_FUTURE_MAX: usize = 2_560;
const WRITE_LOOP_FUTURE_MAX: usize = 1_536;

fn registry() -> Arc<Registry> {
    Registry::new(
        RegistrySettings {
            upstreams: vec![],
            upstream_linger: Duration::from_secs(1),
            capacity: crate::placement::CapacityLimits::viewers_only(10),
            hub: HubConfig::default(),
        },
        Arc::new(Metrics::new("edge", "test")),
    )
}

fn settings() -> Arc<RtmpSettings> {
    Arc::new(RtmpSettings {
        handshake_timeout: Duration::from_secs(1),
        slow_viewer_timeout: Duration::from_secs(1),
        chunk_limits: ChunkLimits::default(),
        viewer_send_buffer: 0,
        viewer_tcp_nodelay: true,
        publish_auth: Arc::new(crate::publish_auth::PublishAuth::open()),
    })
}

async fn loopback_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.expect("connect"), accepted.expect("accept").0)
}

#[tokio::test]
async fn connection_futures_stay_small() {
    let (_client, server) = loopback_pair().await;
    let connection = serve(server, registry(), settings(), CancellationToken::new());
    let serve_size = std::mem::size_of_val(&connection);

    let (_client, server) = loopback_pair().await;
    let (_read, write) = server.into_split();
    let (_tx, rx) = mpsc::channel(1);
    let writer = write_loop(write, rx, registry(), settings(), CancellationToken::new());
    let write_loop_size = std::mem::size_of_val(&writer);

    eprintln!("serve future: {serve_size} bytes, write_loop future: {write_loop_size} bytes");
    assert!(
        serve_size <= SERVE_FUTURE_MAX,
        "serve future {serve_size} B > {SERVE_FUTURE_MAX} B"
    );
    assert!(
        write_loop_size <= WRITE_LOOP_FUTURE_MAX,
        "write_loop future {write_loop_size} B > {WRITE_LOOP_FUTURE_MAX} B"
    );
}
