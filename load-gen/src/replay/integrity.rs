//! `replay --verify-key`: every viewer session checks what it receives with a
//! `surge-integrity` verifier in viewer mode (it may join mid-stream or skip ahead), and the
//! report counts frames verified, failed (by reason) and unverified, in total, per second and
//! per viewer. Frames whose group's signature had not arrived yet when a session ended are
//! counted apart (`pending_at_end`): at most one group per session, not a failure to sign.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;
use surge_integrity::{FrameKind, KeyRing, Verdict, Verifier, VerifyKey, is_signature};
use surge_wire::metadata::SET_DATA_FRAME;

/// The AMF0 string `onMetaData` as a data message starts with it.
const ON_METADATA: &[u8] = b"\x02\x00\x0aonMetaData";
/// Viewers listed one by one in the report (totals count every viewer).
pub const MAX_LISTED_VIEWERS: usize = 1000;

/// Reads each `--verify-key` (public key PEM, or a private key whose public half is meant).
pub fn load_keys(paths: &[PathBuf]) -> Result<Option<KeyRing>> {
    let mut keys = Vec::new();
    for p in paths {
        let pem = std::fs::read(p).with_context(|| format!("--verify-key {}", p.display()))?;
        let key = VerifyKey::from_pem(&pem)
            .with_context(|| format!("--verify-key {}: not a usable key", p.display()))?;
        keys.push(key);
    }
    Ok((!keys.is_empty()).then(|| KeyRing::new(keys)))
}

/// Failures of one reason: how often, and how many frames they covered.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReasonCount {
    pub failures: u64,
    pub frames: u64,
    /// The first failure's description (e.g. which key id was not trusted).
    pub example: String,
}

/// Frames by verdict (a session's, a viewer's, or the run's).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Frames checked: audio, video and metadata (signature messages not included).
    pub frames: u64,
    pub signatures: u64,
    pub verified: u64,
    pub failed: u64,
    pub unverified: u64,
    pub pending_at_end: u64,
    pub failures_by_reason: BTreeMap<String, ReasonCount>,
}

impl Counts {
    fn add(&mut self, v: &Verdict) {
        match v {
            Verdict::Verified { frames, unverified } => {
                self.verified += *frames as u64;
                self.unverified += *unverified as u64;
            }
            Verdict::Failed { reason, frames } => {
                self.failed += *frames as u64;
                let r = self
                    .failures_by_reason
                    .entry(reason.label().to_owned())
                    .or_default();
                if r.failures == 0 {
                    r.example = reason.to_string();
                }
                r.failures += 1;
                r.frames += *frames as u64;
            }
            Verdict::Unverified { frames } => self.unverified += *frames as u64,
        }
    }

    fn merge(&mut self, o: &Counts) {
        self.frames += o.frames;
        self.signatures += o.signatures;
        self.verified += o.verified;
        self.failed += o.failed;
        self.unverified += o.unverified;
        self.pending_at_end += o.pending_at_end;
        for (k, r) in &o.failures_by_reason {
            let mine = self.failures_by_reason.entry(k.clone()).or_default();
            if mine.failures == 0 {
                mine.example = r.example.clone();
            }
            mine.failures += r.failures;
            mine.frames += r.frames;
        }
    }
}

/// Frames settled in one second of the replay (a timeline point's `integrity`).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct WindowCounts {
    pub verified: u64,
    pub failed: u64,
    pub unverified: u64,
}

/// One viewer's counts (its sessions together) and how it played.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ViewerCounts {
    pub protocol: &'static str,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The run's counts, kept in the replay's [`super::stats::Stats`].
#[derive(Debug, Default)]
pub struct RunCounts {
    pub total: Counts,
    pub window: WindowCounts,
    /// Per viewer (its sessions together), the first [`MAX_LISTED_VIEWERS`] viewers.
    pub by_viewer: BTreeMap<u64, ViewerCounts>,
    pub viewers: u64,
    pub viewers_with_failed: u64,
    pub viewers_with_unverified: u64,
    /// Viewers not listed in `by_viewer` (past the cap).
    pub viewers_unlisted: u64,
    seen: std::collections::HashSet<u64>,
    with_failed: std::collections::HashSet<u64>,
    with_unverified: std::collections::HashSet<u64>,
}

impl RunCounts {
    fn on_verdict(&mut self, v: &Verdict) {
        self.total.add(v);
        match v {
            Verdict::Verified { frames, unverified } => {
                self.window.verified += *frames as u64;
                self.window.unverified += *unverified as u64;
            }
            Verdict::Failed { frames, .. } => self.window.failed += *frames as u64,
            Verdict::Unverified { frames } => self.window.unverified += *frames as u64,
        }
    }

    /// A session of `viewer` (playing over `protocol`) ended with `counts` (its verdicts are
    /// already in the totals).
    pub fn session_ended(&mut self, viewer: u64, protocol: &'static str, counts: &Counts) {
        self.total.frames += counts.frames;
        self.total.signatures += counts.signatures;
        self.total.pending_at_end += counts.pending_at_end;
        if self.seen.insert(viewer) {
            self.viewers += 1;
        }
        if counts.failed > 0 && self.with_failed.insert(viewer) {
            self.viewers_with_failed += 1;
        }
        if counts.unverified > 0 && self.with_unverified.insert(viewer) {
            self.viewers_with_unverified += 1;
        }
        if let Some(c) = self.by_viewer.get_mut(&viewer) {
            c.counts.merge(counts);
        } else if self.by_viewer.len() < MAX_LISTED_VIEWERS {
            let counts = counts.clone();
            self.by_viewer
                .insert(viewer, ViewerCounts { protocol, counts });
        } else {
            self.viewers_unlisted += 1;
        }
    }

    pub fn take_window(&mut self) -> WindowCounts {
        std::mem::take(&mut self.window)
    }
}

/// One session's check.
pub struct SessionCheck {
    verifier: Verifier,
    pub counts: Counts,
}

impl SessionCheck {
    pub fn new(keys: KeyRing) -> Self {
        SessionCheck {
            verifier: Verifier::for_viewer(keys),
            counts: Counts::default(),
        }
    }

    /// An RTMP message or FLV tag as received (whole payload): audio (8), video (9) or a
    /// data message (18: `onMetaData`, a `@surgeSignature`; other data is not signed).
    pub fn on_message(&mut self, run: &mut RunCounts, type_id: u8, timestamp: u32, payload: &[u8]) {
        let verdict = match type_id {
            8 => self.frame(FrameKind::Audio, timestamp, payload),
            9 => self.frame(FrameKind::Video, timestamp, payload),
            18 if is_signature(payload) => {
                self.counts.signatures += 1;
                Some(self.verifier.on_signature(payload))
            }
            18 => {
                // Relays hold metadata without `@setDataFrame`, as it was signed.
                let body = payload.strip_prefix(SET_DATA_FRAME).unwrap_or(payload);
                if !body.starts_with(ON_METADATA) {
                    return;
                }
                self.frame(FrameKind::Metadata, timestamp, body)
            }
            _ => None,
        };
        if let Some(v) = verdict {
            self.counts.add(&v);
            run.on_verdict(&v);
        }
    }

    fn frame(&mut self, kind: FrameKind, timestamp: u32, payload: &[u8]) -> Option<Verdict> {
        self.counts.frames += 1;
        self.verifier.on_frame(kind, timestamp, payload)
    }

    /// The session ended: frames still waiting for their signature are pending, not failed.
    pub fn finish(mut self) -> Counts {
        self.counts.pending_at_end += self.verifier.pending() as u64;
        self.counts
    }
}

/// The report's `integrity` object.
pub fn report(run: &RunCounts) -> serde_json::Value {
    let t = &run.total;
    serde_json::json!({
        "frames": t.frames,
        "signatures": t.signatures,
        "verified": t.verified,
        "failed": t.failed,
        "unverified": t.unverified,
        "pending_at_end": t.pending_at_end,
        "failures_by_reason": t.failures_by_reason,
        "viewers": run.viewers,
        "viewers_with_failed": run.viewers_with_failed,
        "viewers_with_unverified": run.viewers_with_unverified,
        "viewers_unlisted": run.viewers_unlisted,
        "by_viewer": run.by_viewer.iter().map(|(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>(),
    })
}

/// The terminal summary's line.
pub fn summary_line(i: &serde_json::Value) -> String {
    let reasons: Vec<String> = i["failures_by_reason"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, r)| format!("{k} {}×/{} frames", r["failures"], r["frames"]))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "signed frames: verified {} | failed {}{} | unverified {} | pending at end {} | viewers {} (with failed frames {}, with unverified {})",
        i["verified"],
        i["failed"],
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        },
        i["unverified"],
        i["pending_at_end"],
        i["viewers"],
        i["viewers_with_failed"],
        i["viewers_with_unverified"],
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use surge_integrity::{GroupSigner, SigningKey};

    const KEY_A: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIFjfaxQn836f1im3Oe6zm0hPpqIbt6rX9bWLG59C0e7\n-----END PRIVATE KEY-----\n";
    const KEY_B: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIk8XE7BmxkewpD4T9xRg6LJ67DkZiBl5y9mJafS1BLp\n-----END PRIVATE KEY-----\n";

    /// A signed stream as a relay sends it: (type id, timestamp, payload), 3 groups + a tail.
    fn stream(key: &str) -> Vec<(u8, u32, Vec<u8>)> {
        let key = Arc::new(SigningKey::from_pem(key.as_bytes()).expect("key"));
        let mut s = GroupSigner::with_session(key, 1, || 5);
        let mut out = Vec::new();
        let mut meta = ON_METADATA.to_vec();
        meta.extend_from_slice(b"\x03\x00\x00\x09");
        let mut msgs: Vec<(u8, FrameKind, u32, Vec<u8>)> = vec![(18, FrameKind::Metadata, 0, meta)];
        for i in 0..100u32 {
            let first = if i % 30 == 0 { 0x17 } else { 0x27 };
            msgs.push((
                9,
                FrameKind::Video,
                i * 33,
                vec![first, 1, 0, 0, 0, i as u8],
            ));
            msgs.push((8, FrameKind::Audio, i * 33 + 5, vec![0xaf, 1, i as u8]));
        }
        for (type_id, kind, ts, p) in msgs {
            if let Some(sig) = s.on_frame(kind, ts, &p) {
                out.push((18, ts, sig));
            }
            out.push((type_id, ts, p));
        }
        out
    }

    fn ring(key: &str) -> KeyRing {
        KeyRing::new(vec![VerifyKey::from_pem(key.as_bytes()).expect("key")])
    }

    fn run(key: &str, msgs: &[(u8, u32, Vec<u8>)], viewer: u64, r: &mut RunCounts) -> Counts {
        let mut c = SessionCheck::new(ring(key));
        for (t, ts, p) in msgs {
            c.on_message(r, *t, *ts, p);
        }
        // Not signed, not counted: another data message.
        c.on_message(r, 18, 0, b"\x02\x00\x11|RtmpSampleAccess");
        let counts = c.finish();
        r.session_ended(viewer, "rtmp", &counts);
        counts
    }

    #[test]
    fn counts_verified_pending_and_failed_frames() {
        let msgs = stream(KEY_A);
        let mut r = RunCounts::default();
        let good = run(KEY_A, &msgs, 0, &mut r);
        // 1 metadata + 200 frames; 3 full groups (90 frames each side + metadata) signed.
        assert_eq!(good.frames, 201);
        assert_eq!(good.signatures, 3);
        assert_eq!((good.verified, good.failed, good.unverified), (181, 0, 0));
        assert_eq!(good.pending_at_end, 20);
        // The viewer joined at the second group: nothing lost, one signature fewer.
        let start = msgs
            .iter()
            .position(|(t, ts, _)| *t == 9 && *ts == 30 * 33)
            .expect("second keyframe");
        let late = run(KEY_A, &msgs[start..], 1, &mut r);
        assert_eq!((late.verified, late.failed, late.unverified), (120, 0, 0));

        let wrong = run(KEY_B, &msgs, 2, &mut r);
        assert_eq!((wrong.verified, wrong.failed), (0, 181));
        assert_eq!(wrong.failures_by_reason["unknown_key"].failures, 3);
        assert!(
            wrong.failures_by_reason["unknown_key"]
                .example
                .contains("not trusted")
        );

        let mut tampered = msgs.clone();
        let victim = tampered
            .iter_mut()
            .find(|(t, ts, _)| *t == 9 && *ts == 40 * 33)
            .expect("a frame");
        victim.2[5] ^= 0x80; // a payload no other frame has
        let t = run(KEY_A, &tampered, 3, &mut r);
        assert_eq!((t.verified, t.failed), (121, 60));
        assert_eq!(t.failures_by_reason["not_signed"].failures, 1);

        assert_eq!(r.viewers, 4);
        assert_eq!(r.viewers_with_failed, 2);
        assert_eq!(r.total.verified, 181 + 120 + 121);
        assert_eq!(r.total.failed, 181 + 60);
        assert_eq!(r.total.pending_at_end, 80);
        assert_eq!(r.total.failures_by_reason["not_signed"].frames, 60);
        let w = r.take_window();
        assert_eq!(w.failed, 241);
        assert_eq!(r.take_window(), WindowCounts::default());
        let json = report(&r);
        assert_eq!(json["by_viewer"]["2"]["failed"], 181);
        assert_eq!(json["by_viewer"]["2"]["protocol"], "rtmp");
        let line = summary_line(&json);
        assert!(
            line.contains("failed 241 (not_signed 1×/60 frames, unknown_key 3×/181 frames)"),
            "{line}"
        );
    }

    #[test]
    fn an_unreadable_key_names_the_flag() {
        let dir = std::env::temp_dir().join(format!("surge-load-vk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let bad = dir.join("bad.pem");
        std::fs::write(&bad, "nope").expect("write");
        let e = format!("{:#}", load_keys(&[bad]).expect_err("bad key"));
        assert!(e.starts_with("--verify-key "), "{e}");
        let e = format!(
            "{:#}",
            load_keys(&[dir.join("missing.pem")]).expect_err("missing")
        );
        assert!(e.starts_with("--verify-key "), "{e}");
        assert!(load_keys(&[]).expect("none").is_none());
        std::fs::remove_dir_all(&dir).ok();
    }
}
