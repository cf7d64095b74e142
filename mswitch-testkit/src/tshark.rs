//! Loopback captures with `dumpcap`, decoded with `tshark`: the independent wire check for the
//! X.400 stack (tshark's tpkt, cotp, ses, pres, acse, rtse, ros and p1 dissectors).
//!
//! Timing follows `shared/interop/recipes.md` §5: the capture is ready once its output file
//! exists (not when dumpcap prints "Capturing on"). Packets still in the kernel's ring buffer
//! are dropped at stop; the recipe found 0.3 s after the last packet enough, and the capture
//! here is stopped 1 s after the caller's last packet, for margin on a loaded machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{TSHARK, TempDir, require};

/// A running capture of TCP traffic on some loopback ports.
#[derive(Debug)]
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
    ports: Vec<u16>,
    _dir: TempDir,
}

impl Capture {
    /// Installs tshark if needed and starts capturing TCP on `ports` on `lo`; returns once the
    /// capture is ready.
    pub fn start(ports: &[u16]) -> Capture {
        require(&[TSHARK]);
        let dir = TempDir::new("mswitch-capture");
        let file = dir.path().join("capture.pcap");
        let filter = ports
            .iter()
            .map(|p| format!("tcp port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let child = Command::new("dumpcap")
            .args(["-q", "-i", "lo", "-P", "-f", &filter, "-w"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dumpcap");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !file.exists() {
            assert!(Instant::now() < deadline, "dumpcap did not start capturing");
            std::thread::sleep(Duration::from_millis(10));
        }
        Capture {
            child: Some(child),
            file,
            ports: ports.to_vec(),
            _dir: dir,
        }
    }

    /// Stops the capture (1 s after the caller's last packet) and returns the file.
    pub fn stop(&mut self) -> &Path {
        if let Some(mut child) = self.child.take() {
            std::thread::sleep(Duration::from_millis(1000));
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
        &self.file
    }

    /// Runs tshark on the (stopped) capture with the ports decoded as RFC 1006 and `args`
    /// added; returns its standard output.
    pub fn tshark(&mut self, args: &[&str]) -> String {
        self.stop();
        let mut cmd = Command::new("tshark");
        cmd.arg("-r").arg(&self.file);
        for p in &self.ports {
            cmd.args(["-d", &format!("tcp.port=={p},tpkt")]);
        }
        let out = cmd.args(args).output().expect("run tshark");
        assert!(
            out.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Frames tshark marks malformed or with an expert warning or error, one line each
    /// (empty when the bytes are right).
    pub fn problems(&mut self) -> String {
        self.tshark(&["-Y", "_ws.malformed || _ws.expert.severity >= 6291456"])
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
