//! An HLS viewer: polls the media playlist the way RFC 8216 §6.3.4 asks a live player to
//! (reload one target duration after the last reload began when it changed, half a target
//! duration after an unchanged one), fetches each new segment, demuxes its H.264 and feeds
//! every picture to the same player models as RTMP and HTTP-FLV viewers, all frames of a
//! segment arriving when its last byte does (a player appends whole segments). It starts
//! `--hls-start-segments` segments from the playlist's end (§6.3.3: at least three target
//! durations back). Per live frame it records chunking, polling and download times
//! ([`super::hls_stats`]).

use std::time::{Duration, Instant};

use super::hls_http::HttpConn;
use super::hls_stats::FrameTimes;
use super::placement::Placement;
use super::reach::Fail;
use super::target::Endpoint;
use super::viewer::{FIRST_FRAME_TIMEOUT, Session, ViewerSpec};
use crate::hls::annexb::{self, Picture};
use crate::hls::m3u8;
use crate::hls::ts::{self, AccessUnit};

/// How long one request may take once playing.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Frame interval when a segment has too few pictures to tell (30 fps).
const DEFAULT_FRAME_US: u64 = 33_333;

pub(super) async fn session(
    spec: &ViewerSpec,
    endpoint: &Endpoint,
    session: &mut Session,
    probe: bool,
) -> Result<(), Fail> {
    if endpoint.is_locator() {
        return Err("HLS viewers play from a server (REGION=HOST:RTMP_PORT:HTTP_PORT), not through a locator".into());
    }
    let addr = endpoint
        .http_addr()
        .ok_or("HLS needs the server's HTTP port: --target REGION=HOST:RTMP_PORT:HTTP_PORT")?;
    session.placed(addr.clone(), Placement::Direct);
    let playlist = format!("/{}/{}.m3u8", spec.app, spec.stream);
    let mut http = HttpConn::new(addr);
    // The next media sequence number to fetch, once the start is chosen.
    let mut next: Option<u64> = None;
    loop {
        let timeout = if session.playing {
            REQUEST_TIMEOUT
        } else {
            FIRST_FRAME_TIMEOUT.saturating_sub(session.t0.elapsed())
        };
        let began = Instant::now();
        let resp = http.get(&playlist, timeout).await?;
        let listed = Instant::now();
        count_bytes(session, resp.wire_bytes);
        if resp.status != 200 {
            return Err(format!("playlist {playlist}: HTTP {}", resp.status).into());
        }
        let pl = m3u8::parse(&resp.body).map_err(|e| format!("playlist {playlist}: {e}"))?;
        let start = match next {
            Some(n) => n,
            None => {
                let back = pl.segments.len().saturating_sub(spec.hls_start_segments);
                match pl.segments.get(back) {
                    Some(s) => s.sequence,
                    None => u64::MAX, // nothing listed yet
                }
            }
        };
        {
            let mut st = session.stats.borrow_mut();
            st.hls.playlist_fetches += 1;
            if let (Some(n), Some(first)) = (next, pl.segments.first())
                && first.sequence > n
            {
                // Fell behind the window: those segments are gone; go on from the oldest.
                st.hls.segments_missed += first.sequence - n;
                next = Some(first.sequence);
            }
        }
        let start = next.unwrap_or(start);
        let fresh: Vec<&m3u8::Segment> =
            pl.segments.iter().filter(|s| s.sequence >= start).collect();
        if fresh.is_empty() {
            session.stats.borrow_mut().hls.playlists_unchanged += 1;
        }
        for seg in &fresh {
            let path = m3u8::resolve(&playlist, &seg.uri).map_err(|e| e.to_string())?;
            let resp = http.get(&path, REQUEST_TIMEOUT.max(timeout)).await?;
            let got = Instant::now();
            count_bytes(session, resp.wire_bytes);
            next = Some(seg.sequence + 1);
            if resp.status == 404 {
                // Removed between the listing and the fetch (a slow player): skip it.
                session.stats.borrow_mut().hls.segments_missed += 1;
                continue;
            }
            if resp.status != 200 {
                return Err(format!("segment {path}: HTTP {}", resp.status).into());
            }
            let units =
                ts::demux_segment(&resp.body).map_err(|e| format!("segment {path}: {e}"))?;
            feed_segment(session, seg.duration_s, &units, listed, got);
            if probe && session.playing {
                return Ok(());
            }
        }
        if pl.ended {
            return Err("the playlist ended (#EXT-X-ENDLIST)".into());
        }
        let target = Duration::from_secs_f64(pl.target_duration_s.min(60.0));
        let wait = if fresh.is_empty() {
            target / 2
        } else {
            target.saturating_sub(began.elapsed())
        };
        tokio::time::sleep(wait).await;
    }
}

fn count_bytes(session: &Session, n: usize) {
    session.stats.borrow_mut().on_bytes(n);
}

/// Every picture of one segment, listed at `listed` and fully downloaded at `got`.
fn feed_segment(
    session: &mut Session,
    duration_s: f64,
    units: &[AccessUnit],
    listed: Instant,
    got: Instant,
) {
    let pictures: Vec<(Picture, u64, usize)> = units
        .iter()
        .map(|u| (annexb::inspect(&u.data), u.pts.unwrap_or(0), u.data.len()))
        .collect();
    let stats = session.stats.clone();
    let mut st = stats.borrow_mut();
    st.hls.segments += 1;
    st.hls.segment_seconds += duration_s;
    // The segment closed when the next one's first frame reached the packager: one frame
    // interval (from the last two PTS) after its own last frame.
    let frame_us = match pictures.as_slice() {
        [.., (_, a, _), (_, b, _)] if b > a && b - a < 90_000 => (b - a) * 1000 / 90,
        _ => DEFAULT_FRAME_US,
    };
    let closed_us = pictures
        .iter()
        .rev()
        .find_map(|(p, _, _)| p.stamp)
        .map(|s| s.publish_us + frame_us);
    let listed_us = st.clock.unix_us(listed);
    let downloaded_us = st.clock.unix_us(got);
    for (picture, pts, len) in pictures {
        st.qoe.media_bytes += len as u64;
        if !session.begin(&mut st, picture.keyframe, got) || !picture.has_slice {
            continue;
        }
        // 90 kHz to ms; the player model copes with the 33-bit wrap as with any jump.
        session.on_picture(&mut st, (pts / 90) as u32, picture.stamp, got);
        if let (Some(stamp), Some(closed)) = (picture.stamp, closed_us)
            && stamp.publish_us >= session.t0_unix_us
            && st.measuring()
        {
            st.hls.on_frame(FrameTimes {
                publish_us: stamp.publish_us,
                segment_closed_us: closed,
                listed_us,
                downloaded_us,
            });
        }
    }
}
