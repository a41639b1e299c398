//! `--hosts-file`: names resolve from the file, read again on every lookup, before DNS.
//! - an edge's `--upstream` host listed with no address does not resolve; once the file gives
//!   the origin's address the edge pulls (its prewarm makes it Ready);
//! - a locator's `--placement-peer localhost:PORT` uses the system resolver while the file is
//!   missing, drops the peer once the file lists `localhost` with no address, and finds it
//!   again when the file gives an address.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, video_payload};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("surge-hosts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Replaces the file at once, as `surge-operator local` does (write, then rename).
fn write_atomically(path: &PathBuf, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_name_follows_the_file() {
    let dir = scratch("upstream");
    let hosts = dir.join("hosts");
    write_atomically(&hosts, "origin.surge.test\n");
    let origin = RelayProcess::start(&["--tier", "origin"]);
    let mut publisher = RtmpClient::publish_with_headers(origin.rtmp, "live", "cam")
        .await
        .expect("publish");
    publisher
        .send_media(9, 0, video_payload(true, &[1; 100]))
        .await
        .expect("keyframe");
    let upstream = format!("rtmp://origin.surge.test:{}/live", origin.rtmp.port());
    let hosts_arg = hosts.display().to_string();
    let edge = RelayProcess::start(&[
        "--tier",
        "edge",
        "--upstream",
        &upstream,
        "--prewarm",
        "live/cam",
        "--hosts-file",
        &hosts_arg,
    ]);
    let ready = || async { common::http_get(edge.http, "/readyz").await.0 == 200 };
    // Listed with no address: nothing to pull from.
    assert!(
        !common::wait_until(Duration::from_secs(2), ready).await,
        "Ready without an upstream address:\n{}",
        edge.log_text()
    );
    write_atomically(&hosts, "# the origin\norigin.surge.test 127.0.0.1\n");
    assert!(
        common::wait_until(Duration::from_secs(15), ready).await,
        "the edge did not pull once the file named the origin:\n{}",
        edge.log_text()
    );
    let stats = common::stats(edge.http).await;
    assert_eq!(stats["streams"][0]["upstream"]["url"], upstream.as_str());
    drop(publisher);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether the locator at `locator` places a viewer on the relay whose HTTP port is `port`.
async fn places_on(locator: SocketAddr, port: u16) -> bool {
    let (status, _, body) =
        common::http_get(locator, "/api/v1/locate?app=live&stream=cam&protocol=flv").await;
    let url = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["url"].as_str().map(str::to_string))
        .unwrap_or_default();
    status == 200 && url.contains(&format!(":{port}/"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_peers_follow_the_file_and_a_missing_file_falls_back() {
    let dir = scratch("peers");
    let hosts = dir.join("hosts");
    let edge = RelayProcess::start(&["--tier", "edge", "--region", "eu"]);
    let peer = format!("localhost:{}", edge.http.port());
    let hosts_arg = hosts.display().to_string();
    // A reflector locator: it places viewers on its region's edges, so a placement on the
    // edge's port says the edge is in its view.
    let locator = RelayProcess::start(&[
        "--tier",
        "reflector",
        "--region",
        "eu",
        "--placement-peer",
        &peer,
        "--hosts-file",
        &hosts_arg,
    ]);
    let port = edge.http.port();
    let in_view = || places_on(locator.http, port);
    let gone = || async { !places_on(locator.http, port).await };
    // No file: localhost resolves as usual.
    assert!(
        common::wait_until(Duration::from_secs(5), in_view).await,
        "the system resolver's localhost is not used:\n{}",
        locator.log_text()
    );
    write_atomically(&hosts, "localhost\n");
    assert!(
        common::wait_until(Duration::from_secs(6), gone).await,
        "a name listed with no address still resolves:\n{}",
        locator.log_text()
    );
    write_atomically(&hosts, "localhost 127.0.0.1\n");
    assert!(
        common::wait_until(Duration::from_secs(5), in_view).await,
        "the rewritten file is not read again:\n{}",
        locator.log_text()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
