//! `--admin-listen` (README, "HTTP endpoints"): `/metrics`, `/api/v1/streams`, `/healthz` and
//! `/readyz` answer on the admin port and 404 on the playback ports (HTTP and HTTPS), where
//! HTTP-FLV and the locator still play; a locator that polls a peer's admin port sends viewers
//! to the peer's playback port; without the flag everything stays on the playback port and
//! the relay says so once at startup.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::flv_reader::FlvReader;
use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, set_data_frame, video_payload, video_sequence_header};

const ADMIN_PATHS: [&str; 4] = ["/metrics", "/api/v1/streams", "/healthz", "/readyz"];

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// `name=ADDR` from the relay's "listening" line (`None` when it says `off`).
fn listener(relay: &RelayProcess, name: &str) -> Option<SocketAddr> {
    // The start saw the line just before the log got it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let line = loop {
        let found = relay
            .log
            .lock()
            .expect("log lock")
            .iter()
            .find(|l| l.contains("listening"))
            .cloned();
        match found {
            Some(line) => break line,
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            None => panic!("no listening line:\n{}", relay.log_text()),
        }
    };
    let field = format!("{name}=");
    let rest = &line[line.find(&field).expect("field in the listening line") + field.len()..];
    rest[..rest.find(' ').unwrap_or(rest.len())].parse().ok()
}

/// A relay with its admin endpoints on a port of their own.
fn relay_with_admin(extra: &[&str]) -> (RelayProcess, SocketAddr) {
    let admin = free_addr().to_string();
    let mut args = vec!["--admin-listen", admin.as_str()];
    args.extend_from_slice(extra);
    let relay = RelayProcess::start(&args);
    let bound = listener(&relay, "admin_addr").expect("an admin address");
    assert_eq!(bound.to_string(), admin);
    (relay, bound)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_paths_answer_on_the_admin_port_and_404_on_the_playback_port() {
    let (relay, admin) = relay_with_admin(&["--tier", "origin"]);
    for path in ADMIN_PATHS {
        let (status, _, body) = common::http_get(admin, path).await;
        assert_eq!(status, 200, "{path} on the admin port: {body:?}");
        let (status, _, body) = common::http_get(relay.http, path).await;
        assert_eq!(
            (status, body.len()),
            (404, 0),
            "{path} must not answer on the playback port"
        );
    }
    assert!(
        !relay.log_contains("admin endpoints are served on the playback port"),
        "no warning with --admin-listen:\n{}",
        relay.log_text()
    );

    // Playback still plays on the playback port.
    let (mut publisher, code) = RtmpClient::publish(relay.rtmp, "live", "s")
        .await
        .expect("publish");
    assert_eq!(code, "NetStream.Publish.Start");
    publisher
        .send_media(18, 0, set_data_frame(320.0, 240.0))
        .await
        .expect("meta");
    publisher
        .send_media(9, 0, video_sequence_header())
        .await
        .expect("seq");
    for i in 0..5u32 {
        publisher
            .send_media(9, i * 40, video_payload(i == 0, &[7u8; 500]))
            .await
            .expect("video");
    }
    let published = common::wait_until(Duration::from_secs(5), || async {
        common::stats(admin).await["streams"][0]["gop_cache_ms"] == 160
    })
    .await;
    assert!(published, "{}", relay.log_text());
    let mut flv = FlvReader::open(relay.http, "/live/s.flv").await;
    assert!(flv.head.starts_with("HTTP/1.1 200"), "{}", flv.head);
    assert!(
        flv.head
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{}",
        flv.head
    );
    assert!(
        flv.read_until_tags(7, Duration::from_secs(5)).await,
        "{:?}",
        flv.tags().1
    );

    // The admin port counts that viewer and names the playback port for peers.
    let stats = common::stats(admin).await;
    assert_eq!(stats["relay"]["viewers"], 1);
    assert_eq!(stats["relay"]["http_port"], relay.http.port());
    let (_, head, metrics) = common::http_get(admin, "/metrics").await;
    assert!(
        String::from_utf8_lossy(&metrics).contains("surge_relay_viewers{"),
        "{}",
        String::from_utf8_lossy(&metrics)
    );
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "no page may read the admin port: {head}"
    );
    // The locator's route is a playback one (this relay is no locator: its own 404 says so).
    let (status, _, body) = common::http_get(relay.http, "/api/v1/locate?app=live&stream=s").await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("--placement-peer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_admin_listen_everything_stays_on_the_playback_port_with_one_warning() {
    let relay = RelayProcess::start(&[]);
    assert_eq!(listener(&relay, "admin_addr"), None);
    for path in ADMIN_PATHS {
        assert_eq!(common::http_get(relay.http, path).await.0, 200, "{path}");
    }
    let warned = common::wait_until(Duration::from_secs(5), || async {
        relay.log_contains("admin endpoints are served on the playback port")
    })
    .await;
    assert!(warned, "{}", relay.log_text());
    let log = relay.log_text();
    assert_eq!(
        log.matches("admin endpoints are served on the playback port")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("--admin-listen"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locator_polling_a_peers_admin_port_sends_viewers_to_its_playback_port() {
    // The region's only edge, reached by the locator at its admin port only.
    let (edge, edge_admin) = relay_with_admin(&["--tier", "edge", "--region", "eu"]);
    let peer = edge_admin.to_string();
    let locator = RelayProcess::start(&[
        "--tier",
        "reflector",
        "--region",
        "eu",
        "--placement-peer",
        &peer,
    ]);
    let want = format!("http://{}/live/s.flv", edge.http);
    let last = std::sync::Mutex::new(String::new());
    let placed = common::wait_until(Duration::from_secs(10), || async {
        let (status, _, body) =
            common::http_get(locator.http, "/api/v1/locate?app=live&stream=s").await;
        let answer = format!("{status} {}", String::from_utf8_lossy(&body));
        let ok = status == 200 && answer.contains(want.as_str());
        *last.lock().expect("lock") = answer;
        ok
    })
    .await;
    let last = last.lock().expect("lock").clone();
    assert!(
        placed,
        "expected {want}, last answer {last}\n{}",
        locator.log_text()
    );
}

fn openssl_self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// `(status, body)` of an HTTPS GET (the certificate not checked: this is about routes).
fn curl_https(addr: SocketAddr, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg(format!("https://{addr}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_https_playback_port_serves_no_admin_path_either() {
    let dir = std::env::temp_dir().join(format!("surge-admin-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert, key) = openssl_self_signed(&dir);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let (relay, admin) = relay_with_admin(&[
        "--https-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    let https = listener(&relay, "https_addr").expect("an https address");
    let (addr, path) = (https, "/api/v1/locate?app=live&stream=s");
    let locate = tokio::task::spawn_blocking(move || curl_https(addr, path))
        .await
        .expect("curl");
    assert_eq!(locate.0, 404, "{locate:?}");
    assert!(locate.1.contains("--placement-peer"), "{locate:?}");
    for path in ADMIN_PATHS {
        let got = tokio::task::spawn_blocking(move || curl_https(https, path))
            .await
            .expect("curl");
        assert_eq!(got, (404, String::new()), "{path} over HTTPS");
        assert_eq!(common::http_get(admin, path).await.0, 200, "{path}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_explains_admin_listen() {
    let out = Command::new(env!("CARGO_BIN_EXE_surge-relay"))
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["--admin-listen", "SURGE_ADMIN_LISTEN", "answer 404"] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}
