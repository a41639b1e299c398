//! RTMPS and HTTPS against the real `surge-relay`, with a test CA made by the `openssl` CLI:
//! ffmpeg publishes over `rtmps://` and ffprobe plays over `https://` and `rtmps://`, both
//! verifying the relay's certificate against the CA (a client trusting another CA is refused).
//! A certificate replaced on disk is what the next TLS connection gets, on both listeners,
//! while a playback connection opened before keeps receiving; a broken file then keeps the
//! certificate in use. A relay whose certificate file is missing exits non-zero with one
//! line naming the flag and the file.

mod common;
mod tree_common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::relay_process::RelayProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tree_common::Proc;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("surge-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`NAME.pem`, `NAME.key`), self-signed.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
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
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &cert,
        ],
    );
    dir.join(cert)
}

/// A server certificate for 127.0.0.1 signed by the CA `ca`, with its own subject and serial.
fn make_server_cert(dir: &Path, ca: &str, name: &str, serial: u32) -> (PathBuf, PathBuf) {
    let (key, csr, cert) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write san.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            &serial.to_string(),
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            &cert,
        ],
    );
    (dir.join(cert), dir.join(key))
}

/// Replaces the file at once (a rename, as a Secret volume or cert-manager's writer does).
fn replace(path: &Path, from: &Path) {
    let tmp = path.with_extension("tmp");
    std::fs::copy(from, &tmp).expect("copy");
    std::fs::rename(&tmp, path).expect("rename");
}

fn der_of(pem: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem)
        .expect("certificate PEM")
        .as_ref()
        .to_vec()
}

/// `name=ADDR` from the relay's "listening" line.
fn listener(relay: &RelayProcess, name: &str) -> SocketAddr {
    // The line reaches the log just after the start saw it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let found = relay
            .log
            .lock()
            .expect("log lock")
            .iter()
            .find(|l| l.contains("listening"))
            .cloned();
        match found {
            Some(l) => break l,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            None => panic!("no listening line:\n{}", relay.log_text()),
        }
    };
    let field = format!("{name}=");
    let at = line.find(&field).expect("field in the listening line") + field.len();
    let rest = &line[at..];
    rest[..rest.find(' ').unwrap_or(rest.len())]
        .parse()
        .expect("address")
}

fn client(ca: &Path) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).expect("CA PEM"))
        .expect("add CA");
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    // Every connection a full handshake: a resumed session shows the certificate of the
    // session it resumes, not the one the server holds now.
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

/// A verified TLS connection to `addr` (as 127.0.0.1).
async fn connect(tls: &TlsConnector, addr: SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    tokio::time::timeout(Duration::from_secs(10), tls.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake verified against the test CA")
}

fn served_cert(conn: &TlsStream<TcpStream>) -> Vec<u8> {
    conn.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a server certificate")
        .as_ref()
        .to_vec()
}

/// A new connection to `addr` gets the certificate in `pem`.
async fn serves(relay: &RelayProcess, tls: &TlsConnector, addr: SocketAddr, pem: &Path) {
    let served = served_cert(&connect(tls, addr).await);
    assert!(
        served == der_of(pem),
        "{addr} did not serve {}:\n{}",
        pem.display(),
        relay.log_text()
    );
}

/// ffmpeg publishing a 25 fps test pattern (keyframe every second) and a tone over RTMPS,
/// verifying the relay's certificate against `ca`.
fn ffmpeg_publish_tls(url: &str, ca: &Path) -> Proc {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        // With audio: the FLV header announces both, and ffprobe reads on until it has seen
        // what was announced.
        .args([
            "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
        ])
        .args(["-tls_verify", "1", "-ca_file"])
        .arg(ca)
        .args(["-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ffmpeg");
    Proc(child)
}

/// Video packets ffprobe reads from `url` (up to `packets`), verifying against `ca`.
fn ffprobe_tls(url: &str, ca: &Path, packets: u32) -> Result<u64, String> {
    let mut child = Command::new("ffprobe")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-tls_verify",
            "1",
            "-ca_file",
        ])
        .arg(ca)
        .args([
            "-select_streams",
            "v:0",
            "-read_intervals",
            &format!("%+#{packets}"),
        ])
        .args([
            "-count_packets",
            "-show_entries",
            "stream=codec_name,nb_read_packets",
        ])
        .args(["-of", "default=noprint_wrappers=1", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn ffprobe: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!(
            "ffprobe {url}: {}{text}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if !text.contains("codec_name=h264") {
        return Err(format!("ffprobe {url}: no h264 video: {text}"));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("nb_read_packets="))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("ffprobe {url}: no packet count: {text}"))
}

async fn probe(url: String, ca: PathBuf) -> Result<u64, String> {
    tokio::task::spawn_blocking(move || ffprobe_tls(&url, &ca, 10))
        .await
        .expect("ffprobe task")
}

/// Reads from `conn` until `bytes` more arrived (or panics after `within`).
async fn receives(conn: &mut TlsStream<TcpStream>, bytes: usize, within: Duration) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + within;
    while got < bytes {
        let n = tokio::time::timeout_at(deadline, conn.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("only {got} of {bytes} bytes in {within:?}"))
            .expect("read playback");
        assert!(n > 0, "playback closed after {got} bytes");
        got += n;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_over_rtmps_and_https_and_a_replaced_certificate_serves_the_next_connection() {
    let dir = temp_dir("swap");
    let ca = make_ca(&dir, "test-ca");
    let (one_cert, one_key) = make_server_cert(&dir, "test-ca", "surge-one", 1);
    let (two_cert, two_key) = make_server_cert(&dir, "test-ca", "surge-two", 2);
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    replace(&cert, &one_cert);
    replace(&key, &one_key);
    let relay = RelayProcess::start(&[
        "--rtmps-listen",
        "127.0.0.1:0",
        "--https-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().expect("utf-8 path"),
        "--tls-key",
        key.to_str().expect("utf-8 path"),
    ]);
    let (rtmps, https) = (
        listener(&relay, "rtmps_addr"),
        listener(&relay, "https_addr"),
    );
    let tls = client(&ca);

    // ffmpeg publishes over RTMPS, verifying the certificate.
    let mut broadcaster = ffmpeg_publish_tls(&format!("rtmps://{rtmps}/live/cam"), &ca);
    let live = common::wait_until(Duration::from_secs(20), || async {
        common::stats(relay.http).await["streams"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == "cam"))
    })
    .await;
    assert!(live, "no stream over rtmps:\n{}", relay.log_text());

    // ffprobe plays it over HTTPS and over RTMPS.
    let flv = format!("https://{https}/live/cam.flv");
    let packets = probe(flv.clone(), ca.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", relay.log_text()));
    assert!(packets >= 10, "{packets} video packets over https");
    let packets = probe(format!("rtmps://{rtmps}/live/cam"), ca.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", relay.log_text()));
    assert!(packets >= 10, "{packets} video packets over rtmps");
    // A client that trusts another CA is refused by its own verification.
    let other_ca = make_ca(&dir, "other-ca");
    assert!(probe(flv.clone(), other_ca).await.is_err());

    // A playback connection opened with certificate one.
    let mut playing = connect(&tls, https).await;
    assert_eq!(served_cert(&playing), der_of(&one_cert));
    playing
        .write_all(b"GET /live/cam.flv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("request");
    receives(&mut playing, 20_000, Duration::from_secs(10)).await;

    // Certificate two replaces it on disk: the next connection on either listener gets it,
    // without a restart, and ffprobe plays with it.
    replace(&cert, &two_cert);
    replace(&key, &two_key);
    serves(&relay, &tls, https, &two_cert).await;
    serves(&relay, &tls, rtmps, &two_cert).await;
    let packets = probe(flv.clone(), ca.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", relay.log_text()));
    assert!(
        packets >= 10,
        "{packets} video packets with certificate two"
    );
    assert!(relay.log_contains("tls certificate changed on disk: reloaded"));

    // The connection opened before the swap goes on with its session; so does the publisher.
    receives(&mut playing, 50_000, Duration::from_secs(10)).await;
    assert_eq!(served_cert(&playing), der_of(&one_cert));
    assert!(
        matches!(broadcaster.0.try_wait(), Ok(None)),
        "the rtmps broadcaster stopped:\n{}",
        relay.log_text()
    );

    // A broken certificate file: logged, and certificate two stays in use.
    std::fs::write(
        dir.join("broken"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    )
    .expect("w");
    replace(&cert, &dir.join("broken"));
    serves(&relay, &tls, https, &two_cert).await;
    assert!(
        relay.log_contains("cannot be used: still serving the previous one"),
        "{}",
        relay.log_text()
    );
    receives(&mut playing, 20_000, Duration::from_secs(10)).await;
    broadcaster.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The body of `GET path` over a verified TLS connection (`Connection: close`).
async fn https_get(tls: &TlsConnector, addr: SocketAddr, path: &str) -> (u16, String) {
    let mut conn = connect(tls, addr).await;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.expect("request");
    let mut raw = Vec::new();
    // A peer closing without close_notify is fine here: the body is complete.
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_locator_over_https_answers_https_urls_for_itself() {
    let dir = temp_dir("locate");
    let ca = make_ca(&dir, "test-ca");
    let (cert, key) = make_server_cert(&dir, "test-ca", "surge-locator", 1);
    let http = SocketAddr::from(([127, 0, 0, 1], tree_common::free_port()));
    let http_arg = http.to_string();
    // Its own region's only relay: it places viewers on itself.
    let relay = RelayProcess::spawn(
        &[
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            &http_arg,
            "--placement-peer",
            &http_arg,
            "--https-listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().expect("utf-8 path"),
            "--tls-key",
            key.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    let https = listener(&relay, "https_addr");
    let tls = client(&ca);
    let _broadcaster = tree_common::ffmpeg_publish(&relay.rtmp_url("live", "cam"));
    let path = "/api/v1/locate?app=live&stream=cam&protocol=flv";
    // Placed once the locator has polled itself and the stream is live.
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        let answer = https_get(&tls, https, path).await;
        if answer.0 == 200 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let placed = answer.0 == 200;
    assert!(placed, "{answer:?}\n{}", relay.log_text());
    let expected = format!("\"url\":\"https://{https}/live/cam.flv?");
    assert!(answer.1.contains(&expected), "{}", answer.1);
    // The plain listener still answers http:// URLs.
    let (status, _, body) = common::http_get(http, path).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("\"url\":\"http://{http}/live/cam.flv?")),
        "{body}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_certificate_file_stops_the_relay_with_one_line() {
    let dir = temp_dir("missing");
    let missing = dir.join("absent.crt");
    let key = dir.join("absent.key");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_surge-relay"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SURGE_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args([
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .args(["--rtmps-listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&missing)
        .arg("--tls-key")
        .arg(&key)
        .env("RUST_LOG", "info")
        // As started by default: a backtrace is printed only when asked for.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("run surge-relay");
    assert!(!out.status.success(), "started without its certificate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("--tls-cert") && lines[0].contains(missing.to_str().expect("utf-8")),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "it listened anyway"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `app/stream`'s entry in `relay`'s `/api/v1/streams`, if it carries it.
async fn stream_stats(relay: &RelayProcess, name: &str) -> Option<serde_json::Value> {
    common::stats(relay.http).await["streams"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
}

/// `rtmps://` upstreams: an edge pulls over TLS, checking the origin's certificate against
/// `--upstream-ca`, and reports the `rtmps://` URL it is connected to; ffprobe plays what it
/// pulled. An edge trusting another CA never connects and logs why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_pulls_over_rtmps_checking_the_origins_certificate() {
    let dir = temp_dir("pull");
    let ca = make_ca(&dir, "test-ca");
    let other_ca = make_ca(&dir, "other-ca");
    let (cert, key) = make_server_cert(&dir, "test-ca", "surge-origin", 1);
    let origin = RelayProcess::start(&[
        "--rtmps-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().expect("utf-8 path"),
        "--tls-key",
        key.to_str().expect("utf-8 path"),
    ]);
    let rtmps = listener(&origin, "rtmps_addr");
    let mut broadcaster = ffmpeg_publish_tls(&format!("rtmps://{rtmps}/live/cam"), &ca);
    let upstream = format!("rtmps://{rtmps}/live");
    let edge = |trusted: &Path| {
        RelayProcess::start(&[
            "--tier",
            "edge",
            "--upstream",
            &upstream,
            "--upstream-ca",
            trusted.to_str().expect("utf-8 path"),
            "--prewarm",
            "live/cam",
        ])
    };
    let trusting = edge(&ca);
    let distrusting = edge(&other_ca);

    let connected = common::wait_until(Duration::from_secs(20), || async {
        stream_stats(&trusting, "cam").await.is_some_and(|s| {
            s["upstream"]["state"] == "connected" && s["gop_cache_ms"].as_u64().unwrap_or(0) > 0
        })
    })
    .await;
    assert!(
        connected,
        "no pull over rtmps:\n{}\n--- origin:\n{}",
        trusting.log_text(),
        origin.log_text()
    );
    let s = stream_stats(&trusting, "cam").await.expect("the stream");
    assert_eq!(s["upstream"]["url"], upstream.as_str(), "{s:#}");
    let flv = trusting.flv_url("live", "cam");
    let packets = tokio::task::spawn_blocking(move || {
        let out = Command::new("ffprobe")
            .args(["-hide_banner", "-v", "error", "-select_streams", "v:0"])
            .args(["-read_intervals", "%+#10", "-count_packets"])
            .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
            .arg(&flv)
            .output()
            .expect("ffprobe runs");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    })
    .await
    .expect("ffprobe task");
    assert!(packets >= 10, "{packets} video packets at the edge");

    // The other CA did not sign the origin's certificate: refused, said in the log.
    let refused = common::wait_until(Duration::from_secs(10), || async {
        distrusting.log_contains("TLS with 127.0.0.1 failed")
    })
    .await;
    assert!(refused, "{}", distrusting.log_text());
    let s = stream_stats(&distrusting, "cam").await.expect("the stream");
    assert_ne!(s["upstream"]["state"], "connected", "{s:#}");
    broadcaster.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unreadable_upstream_ca_stops_the_relay_naming_the_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_surge-relay"))
        .args([
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .args(["--upstream", "rtmps://127.0.0.1:1/live"])
        .args(["--upstream-ca", "/nonexistent/ca.pem"])
        .output()
        .expect("surge-relay runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--upstream-ca /nonexistent/ca.pem"), "{err}");
}
