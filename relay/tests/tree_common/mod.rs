//! Helpers for the tree tests (tree_*.rs): real ffmpeg publishers, ffprobe, and nginx-rtmp
//! servers in temporary directories. Every process is killed on drop, even when a test fails.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (and reaped) on drop.
pub struct Proc(pub Child);

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port that was free a moment ago (for servers that need a port in a config file).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

pub fn wait_for_listener(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// ffmpeg publishing a 320x240 25 fps libx264 test pattern (keyframe every 25 frames) with AAC
/// audio to `url`, in real time.
pub fn ffmpeg_publish(url: &str) -> Proc {
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
        .args([
            "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
        ])
        .args(["-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ffmpeg");
    Proc(child)
}

/// What ffprobe saw of the first video stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Probe {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub video_packets: u64,
}

/// Reads `packets` video packets from `url` with ffprobe (RTMP or HTTP-FLV).
pub fn ffprobe_video(url: &str, packets: u32, timeout: Duration) -> Result<Probe, String> {
    let mut child = Command::new("ffprobe")
        .args(["-hide_banner", "-v", "error", "-select_streams", "v:0"])
        .args([
            "-read_intervals",
            &format!("%+#{packets}"),
            "-count_packets",
        ])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_packets",
            "-of",
            "default=noprint_wrappers=1",
            url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn ffprobe: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("ffprobe on {url} did not finish in {timeout:?}"));
            }
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!(
            "ffprobe on {url} failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut p = Probe::default();
    for line in text.lines() {
        match line.split_once('=') {
            Some(("codec_name", v)) => p.codec = v.to_string(),
            Some(("width", v)) => p.width = v.parse().unwrap_or(0),
            Some(("height", v)) => p.height = v.parse().unwrap_or(0),
            Some(("nb_read_packets", v)) => p.video_packets = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    Ok(p)
}

/// An nginx with the RTMP module, single process, in its own temporary prefix.
pub struct Nginx {
    pub proc: Proc,
    pub port: u16,
    pub prefix: PathBuf,
}

impl Nginx {
    /// `app_extra` goes inside `application live { live on; ... }` (e.g. a `pull` line).
    pub fn start(app_extra: &str) -> Nginx {
        Nginx::start_on(app_extra, free_port())
    }

    /// Like [`Nginx::start`] on a given port (to bring a server back where it was).
    pub fn start_on(app_extra: &str, port: u16) -> Nginx {
        let prefix = std::env::temp_dir().join(format!(
            "surge-tree-nginx-{}-{port}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(prefix.join("logs")).expect("nginx prefix");
        let conf = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
             worker_processes 1;\n\
             master_process off;\n\
             pid {pid};\n\
             events {{ worker_connections 256; }}\n\
             rtmp {{\n  server {{\n    listen 127.0.0.1:{port};\n    chunk_size 4096;\n\
             \x20   application live {{\n      live on;\n      {app_extra}\n    }}\n  }}\n}}\n",
            pid = prefix.join("nginx.pid").display(),
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(&prefix)
            .args(["-g", "daemon off; error_log stderr;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let nginx = Nginx {
            proc: Proc(child),
            port,
            prefix,
        };
        assert!(
            wait_for_listener(nginx.addr(), Duration::from_secs(10)),
            "nginx did not listen on {}",
            nginx.addr()
        );
        nginx
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn app_url(&self) -> String {
        format!("rtmp://127.0.0.1:{}/live", self.port)
    }

    pub fn stream_url(&self, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{stream}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.proc.kill();
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}

/// [`ffmpeg_publish`] to `live/<stream>` on `origin`, returned once the origin reports the
/// stream live from a publisher (fails the test with the origin's log otherwise).
pub async fn publish_live(
    origin: &crate::common::relay_process::RelayProcess,
    stream: &str,
) -> Proc {
    let publisher = ffmpeg_publish(&origin.rtmp_url("live", stream));
    assert!(
        crate::common::wait_until(Duration::from_secs(20), || async {
            let stats = crate::common::stats(origin.http).await;
            stats["streams"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["name"] == stream && s["source"] == "publisher")
        })
        .await,
        "publisher live at the origin\n{}",
        origin.log_text()
    );
    publisher
}
