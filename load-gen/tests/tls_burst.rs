//! RTMPS and HTTPS from the load generator against a real relay with a test CA:
//! `surge-load publish` over rtmps:// with a publish key, and `surge-load burst` of HTTPS-FLV
//! viewers and RTMPS publishers — each joining, the TLS step timed, a server certificate
//! from an unknown CA and a wrong publish key refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::relay::{start_relay_with, wait_for_publisher};
use common::{Guard, free_port, one_at_a_time, temp_dir, wait_for_port};

/// A test CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, cert, key).
fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
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
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=surge-burst-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

fn burst(dir: &Path, name: &str, args: &[&str]) -> (Output, Value) {
    let report = dir.join(format!("{name}.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_surge-load"))
        .arg("burst")
        .args(args)
        .arg("--report")
        .arg(&report)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run burst");
    let json = std::fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (out, json)
}

fn errors(report: &Value) -> String {
    report["errors"].to_string()
}

#[test]
fn tls_viewers_and_publishers_join_in_a_burst_and_bad_certificates_or_keys_are_refused() {
    let _serial = one_at_a_time();
    let dir = temp_dir("tls-burst");
    let (ca, cert, key) = test_ca(&dir);
    std::fs::write(dir.join("keys"), "k1\n").expect("keys");
    let (rtmp, http, rtmps, https) = (free_port(), free_port(), free_port(), free_port());
    let tls_flags = [
        "--rtmps-listen".to_string(),
        format!("127.0.0.1:{rtmps}"),
        "--https-listen".into(),
        format!("127.0.0.1:{https}"),
        "--tls-cert".into(),
        cert.display().to_string(),
        "--tls-key".into(),
        key.display().to_string(),
        "--publish-keys-file".into(),
        dir.join("keys").display().to_string(),
    ];
    let tls_flags: Vec<&str> = tls_flags.iter().map(String::as_str).collect();
    let _relay = start_relay_with(&dir, rtmp, http, &tls_flags);
    wait_for_port(rtmps);
    wait_for_port(https);
    let ca = ca.display().to_string();

    // A real publisher over RTMPS with its key, trusting the test CA.
    let log = std::fs::File::create(dir.join("publish.log")).expect("log");
    let _publisher = Guard(
        Command::new(env!("CARGO_BIN_EXE_surge-load"))
            .args([
                "publish",
                "--url",
                &format!("rtmps://127.0.0.1:{rtmps}/live/e2e?key=k1"),
            ])
            .args(["--ca-file", &ca, "--duration", "60s"])
            .env("RUST_LOG", "info")
            .stderr(log)
            .spawn()
            .expect("start publisher"),
    );
    wait_for_publisher(http, "e2e", Duration::from_secs(10));
    let publish_log = std::fs::read_to_string(dir.join("publish.log")).unwrap_or_default();
    assert!(
        !publish_log.contains("k1"),
        "the key reached the log:\n{publish_log}"
    );

    // 40 HTTPS viewers at once: every one through TLS to its first video frame.
    let viewers = format!("https://127.0.0.1:{https}/live/e2e.flv");
    let (out, report) = burst(
        &dir,
        "https",
        &[
            "--url",
            &viewers,
            "--count",
            "40",
            "--hold",
            "1s",
            "--ca-file",
            &ca,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["joined"], 40, "{report}");
    assert_eq!(report["tls"], true);
    let tls_p50 = report["tls_ms"]["p50"].as_f64().expect("tls step timed");
    let join_p50 = report["join_ms"]["p50"].as_f64().expect("join timed");
    assert!(tls_p50 > 0.0 && join_p50 >= tls_p50, "{report}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("tls handshake"));

    // The same viewers in the clear: no TLS step.
    let plain = format!("http://127.0.0.1:{http}/live/e2e.flv");
    let (out, report) = burst(
        &dir,
        "http",
        &["--url", &plain, "--count", "10", "--hold", "0s"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        (report["joined"].as_u64(), report["tls_ms"].is_null()),
        (Some(10), true),
        "{report}"
    );

    // Without the test CA the relay's certificate is not trusted: nobody joins.
    let (out, report) = burst(
        &dir,
        "untrusted",
        &["--url", &viewers, "--count", "3", "--hold", "0s"],
    );
    assert!(!out.status.success());
    assert_eq!(report["joined"], 0, "{report}");
    assert!(errors(&report).contains("certificate"), "{report}");

    // Publishers over RTMPS, each its own stream: the right key joins, a wrong one is refused.
    let publishers = format!("rtmps://127.0.0.1:{rtmps}/live/burst-{{n}}?key=k1");
    let (out, report) = burst(
        &dir,
        "publishers",
        &[
            "--url",
            &publishers,
            "--count",
            "8",
            "--hold",
            "1s",
            "--ca-file",
            &ca,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["joined"], 8, "{report}");
    assert!(
        !report["url"].as_str().unwrap_or("k1").contains("k1"),
        "{report}"
    );
    let wrong = format!("rtmps://127.0.0.1:{rtmps}/live/burst-{{n}}?key=nope");
    let (_, report) = burst(
        &dir,
        "wrong-key",
        &[
            "--url",
            &wrong,
            "--count",
            "2",
            "--hold",
            "0s",
            "--ca-file",
            &ca,
        ],
    );
    assert_eq!(report["joined"], 0, "{report}");
    assert!(errors(&report).contains("BadName"), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_burst_arguments_get_one_clear_line() {
    for (args, says) in [
        (vec!["--url", "ftp://h/a.flv"], "unknown scheme"),
        (
            vec!["--url", "http://h/a.flv", "--count", "0"],
            "--count must be",
        ),
        (
            vec!["--url", "http://h/a.flv", "--ca-file", "x.pem"],
            "--ca-file is only used",
        ),
        (
            vec!["--url", "https://h/a.flv", "--ca-file", "/nonexistent.pem"],
            "--ca-file /nonexistent.pem",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_surge-load"))
            .arg("burst")
            .args(&args)
            .output()
            .expect("run burst");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
