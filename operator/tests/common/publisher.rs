//! A live test pattern published with ffmpeg, stopped when dropped.

use std::process::{Child, Command, Stdio};

/// A child process killed (and reaped) when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ffmpeg publishing a 320x240, 25 fps H.264 test pattern (1 s GOP) to `url` in real time for
/// at most `seconds`.
pub fn ffmpeg_publish(url: &str, seconds: u32) -> KillOnDrop {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args([
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-t",
            &seconds.to_string(),
        ])
        .args(["-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg is installed (scripts/install-deps)");
    KillOnDrop(child)
}
