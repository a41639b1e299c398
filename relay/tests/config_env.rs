//! Every flag can be given as an environment variable (README, "Flags"): each `SURGE_*`
//! variable in the README's table is read (a bad value stops the relay with a message naming
//! its flag), and a relay configured by the environment alone runs as configured, including
//! comma-separated `SURGE_UPSTREAM` and `SURGE_PREWARM` lists.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, video_payload};

/// A bad value for each variable, and the flag the relay's error message must name.
const BAD_VALUES: &[(&str, &str, &str)] = &[
    ("SURGE_RTMP_LISTEN", "nowhere", "--rtmp-listen"),
    ("SURGE_HTTP_LISTEN", "nowhere", "--http-listen"),
    ("SURGE_ADMIN_LISTEN", "nowhere", "--admin-listen"),
    ("SURGE_RTMPS_LISTEN", "nowhere", "--rtmps-listen"),
    ("SURGE_HTTPS_LISTEN", "nowhere", "--https-listen"),
    // Alone, either file is refused for lacking the other; so is a TLS listener without them.
    ("SURGE_TLS_CERT", "/nonexistent/tls.crt", "--tls-cert"),
    ("SURGE_TLS_KEY", "/nonexistent/tls.key", "--tls-key"),
    ("SURGE_UPSTREAM", "http://origin/live", "--upstream"),
    ("SURGE_UPSTREAM_CA", "/nonexistent/ca.pem", "--upstream-ca"),
    ("SURGE_PREWARM", "no-slash", "--prewarm"),
    ("SURGE_TIER", "boss", "--tier"),
    (
        "SURGE_PUBLISH_KEYS_FILE",
        "/nonexistent/surge-publish-keys",
        "--publish-keys-file",
    ),
    ("SURGE_SIGN_KEY", "/nonexistent/sign.pem", "--sign-key"),
    (
        "SURGE_VERIFY_KEY",
        "/nonexistent/verify.pem",
        "--verify-key",
    ),
    ("SURGE_MAX_VIEWERS", "many", "--max-viewers"),
    ("SURGE_SLOW_VIEWER_TIMEOUT", "5y", "--slow-viewer-timeout"),
    ("SURGE_VIEWER_BACKLOG_BYTES", "-1", "--viewer-backlog-bytes"),
    (
        "SURGE_VIEWER_SEND_BUFFER_BYTES",
        "big",
        "--viewer-send-buffer-bytes",
    ),
    ("SURGE_VIEWER_TCP_NODELAY", "maybe", "--viewer-tcp-nodelay"),
    ("SURGE_FANOUT_TASKS", "lots", "--fanout-tasks"),
    ("SURGE_MAX_WRITE_DELAY", "2s", "--max-write-delay"),
    ("SURGE_GOP_CACHE_MAX_BYTES", "1GB", "--gop-cache-max-bytes"),
    ("SURGE_UPSTREAM_LINGER", "soon", "--upstream-linger"),
    ("SURGE_SHUTDOWN_GRACE", "later", "--shutdown-grace"),
    ("SURGE_LOG_FORMAT", "xml", "--log-format"),
    ("SURGE_HANDSHAKE_TIMEOUT", "1x", "--handshake-timeout"),
    ("SURGE_MAX_EGRESS_MBPS", "-3", "--max-egress-mbps"),
    ("SURGE_BITRATE_FLOOR_KBPS", "fast", "--bitrate-floor-kbps"),
    ("SURGE_READY_MAX_LOAD", "2", "--ready-max-load"),
    ("SURGE_READY_RESUME_LOAD", "0.95", "--ready-resume-load"),
    ("SURGE_PLACEMENT_PEERS", "no-port", "--placement-peer"),
    ("SURGE_OVERFLOW", "a/b", "--overflow"),
    ("SURGE_PARENT_PEERS", "no-port", "--parent-peer"),
    ("SURGE_PARENT_FANOUT", "0", "--parent-fanout"),
    ("SURGE_SIBLING_PEERS", "no-port", "--sibling-peer"),
    ("SURGE_ADVERTISE_RTMP_PORT", "0", "--advertise-rtmp-port"),
    ("SURGE_ADVERTISE_HTTP_PORT", "http", "--advertise-http-port"),
    // A name given twice (refused after parsing; a bad name is refused by the parser).
    ("SURGE_METRICS_LABELS", "team=a,team=b", "--metrics-label"),
];

/// Variables any string is valid for; the relay configured by environment shows them.
const FREE_FORM: &[&str] = &[
    "SURGE_REGION",
    "SURGE_ADVERTISE_HOST",
    "SURGE_ADVERTISE_HOST_FILE",
    "SURGE_HOSTS_FILE",
];

/// The `SURGE_*` names in the README's flag table.
fn readme_variables() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let table = readme
        .split("### Flags")
        .nth(1)
        .and_then(|rest| rest.split("\n### ").next())
        .expect("a Flags section in README.md");
    table
        .lines()
        .filter(|l| l.starts_with("| `--"))
        .filter_map(|l| {
            let start = l.find("`SURGE_")? + 1;
            let len = l[start..].find('`')?;
            Some(l[start..start + len].to_string())
        })
        .collect()
}

#[test]
fn every_variable_in_the_readme_is_read() {
    let documented = readme_variables();
    let tested: BTreeSet<String> = BAD_VALUES
        .iter()
        .map(|(var, _, _)| var.to_string())
        .chain(FREE_FORM.iter().map(|v| v.to_string()))
        .collect();
    assert_eq!(documented, tested, "README flag table vs this test");

    for &(var, bad, flag) in BAD_VALUES {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_surge-relay"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("SURGE_") {
                cmd.env_remove(k);
            }
        }
        // Loopback listeners, so a relay that ignored the variable starts harmlessly.
        cmd.env("SURGE_RTMP_LISTEN", "127.0.0.1:0")
            .env("SURGE_HTTP_LISTEN", "127.0.0.1:0")
            .env(var, bad)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn surge-relay");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{var}={bad}: the relay started (the variable is not read)");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr =
            std::io::read_to_string(child.stderr.take().expect("stderr")).expect("read stderr");
        assert!(!status.success(), "{var}={bad} accepted");
        assert!(
            stderr.contains(flag),
            "{var}={bad}: the error does not name {flag}:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_configured_by_environment_only() {
    let origin = RelayProcess::start(&["--tier", "origin"]);
    let mut publishers = Vec::new();
    for stream in ["a", "b"] {
        let mut p = RtmpClient::publish_with_headers(origin.rtmp, "live", stream)
            .await
            .expect("publish at the origin");
        p.send_media(9, 0, video_payload(true, &[1; 100]))
            .await
            .expect("keyframe");
        publishers.push(p);
    }
    // First in the list: a port nothing listens on, so the edge moves on to the second.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let origin_url = format!("rtmp://{}/live", origin.rtmp);
    let upstreams = format!("rtmp://{dead}/live,{origin_url}");
    let edge = RelayProcess::spawn(
        &[],
        &[
            ("SURGE_RTMP_LISTEN", "127.0.0.1:0"),
            ("SURGE_HTTP_LISTEN", "127.0.0.1:0"),
            ("SURGE_UPSTREAM", &upstreams),
            ("SURGE_PREWARM", "live/a,live/b"),
            ("SURGE_TIER", "edge"),
            ("SURGE_REGION", "env-region"),
            ("SURGE_METRICS_LABELS", "team=video,cluster=eu1"),
            ("SURGE_MAX_VIEWERS", "7"),
            ("SURGE_LOG_FORMAT", "json"),
        ],
    );

    // Both prewarmed streams pulled from the second upstream: /readyz waits for them.
    let ready = common::wait_until(Duration::from_secs(15), || async {
        common::http_get(edge.http, "/readyz").await.0 == 200
    })
    .await;
    assert!(ready, "edge not ready:\n{}", edge.log_text());
    let stats = common::stats(edge.http).await;
    assert_eq!(stats["relay"]["tier"], "edge", "{stats}");
    assert_eq!(stats["relay"]["region"], "env-region", "{stats}");
    assert_eq!(stats["relay"]["max_viewers"], 7, "{stats}");
    let streams = stats["streams"].as_array().expect("streams");
    let names: Vec<&str> = streams.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["a", "b"], "{stats}");
    for s in streams {
        assert_eq!(s["source"], "upstream", "{s}");
        assert_eq!(s["upstream"]["url"], origin_url.as_str(), "{s}");
    }
    let region = common::metric(
        edge.http,
        "surge_relay_max_viewers",
        &[("region", "env-region")],
    )
    .await;
    assert_eq!(region, Some(7.0), "metrics labelled with the region");
    let labelled = common::metric(
        edge.http,
        "surge_relay_max_viewers",
        &[("team", "video"), ("cluster", "eu1")],
    )
    .await;
    assert_eq!(
        labelled,
        Some(7.0),
        "metrics labelled with SURGE_METRICS_LABELS"
    );
    let log = edge.log_text();
    assert!(
        log.lines().all(|l| l.starts_with('{')),
        "SURGE_LOG_FORMAT=json: non-JSON log lines:\n{log}"
    );
}
