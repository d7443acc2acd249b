//! Child processes and ports for tests on a busy machine: a child is killed when its guard drops
//! (a failing test leaves nothing behind), its stderr is collected so a test awaits a log line
//! instead of sleeping, and a handler started on port 0 reports the port it holds. A port that
//! must refuse connections is held bound (not listening) for as long as the test needs it, so no
//! other test can take it in between.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The line the handler logs once it listens: `handler ready on 127.0.0.1:<port>`.
pub const READY_LINE: &str = "handler ready on 127.0.0.1:";

#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    changed: Notify,
    closed: Mutex<bool>,
}

/// A spawned child, killed (and reaped) on drop, with its stderr collected line by line.
pub struct ChildGuard {
    child: Child,
    stderr: Arc<Lines>,
}

impl ChildGuard {
    /// Spawns `command` with stderr captured (stdout is left as the command set it).
    pub fn spawn(mut command: Command) -> std::io::Result<Self> {
        let mut child = command.stderr(Stdio::piped()).spawn()?;
        let stderr = Arc::new(Lines::default());
        if let Some(pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    sink.lines.lock().unwrap().push(line);
                    sink.changed.notify_waiters();
                }
                *sink.closed.lock().unwrap() = true;
                sink.changed.notify_waiters();
            });
        }
        Ok(ChildGuard { child, stderr })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lines.lock().unwrap().join("\n")
    }

    /// Waits for a stderr line containing `needle` and returns it; panics with the stderr so far
    /// if the child closes stderr (exits) first or `timeout` passes.
    pub async fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let changed = self.stderr.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(line) = self
                .stderr
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            if *self.stderr.closed.lock().unwrap() {
                panic!("the child ended before logging {needle:?}:\n{}", self.stderr());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, changed).await.is_err() {
                panic!("no {needle:?} within {timeout:?}:\n{}", self.stderr());
            }
        }
    }

    /// The port a handler started with `FUNCTIONS_CUSTOMHANDLER_PORT=0` listens on, read from its
    /// ready line: the handler holds it from bind to exit, so no other test can take it.
    pub async fn ready_port(&self, timeout: Duration) -> u16 {
        let line = self.wait_for_line(READY_LINE, timeout).await;
        let at = line.find(READY_LINE).map_or(0, |i| i + READY_LINE.len());
        let digits: String = line[at..].chars().take_while(char::is_ascii_digit).collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("no port in {line:?}"))
    }

    /// Sends SIGTERM (how the Functions host stops a worker).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {}", self.child.id());
    }

    /// SIGKILL (a crash: no shutdown path runs) and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the child has exited, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits for the child to exit; panics after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running {timeout:?} later:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A local port bound and not listening, held until dropped: connecting to it is refused, and
/// no other test can take it meanwhile.
pub struct ClosedPort {
    socket: tokio::net::TcpSocket,
}

impl ClosedPort {
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
        ClosedPort { socket }
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().expect("bound").port()
    }
}

impl Default for ClosedPort {
    fn default() -> Self {
        Self::new()
    }
}
