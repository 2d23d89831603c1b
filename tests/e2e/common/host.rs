//! The real host process: started on a config, its log collected, killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a host may take to compile its plugins and start listening.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A running `mcp-wasm-host serve` process, killed on drop.
pub struct Host {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Host {
    /// Writes `config` to a fresh folder and starts the host on it; waits until it
    /// listens. Panics with the host's stderr if it does not.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_under(config, env, &[])
    }

    /// Like [`Host::start`], with the host's open-file limit (soft and hard) set to
    /// `limit` by util-linux `prlimit`.
    pub fn start_with_fd_limit(config: &str, env: &[(&str, &str)], limit: u64) -> Self {
        let nofile = format!("--nofile={limit}:{limit}");
        Self::start_under(config, env, &["prlimit", &nofile, "--"])
    }

    /// Starts the host as the last argument of `wrapper` (none: directly).
    fn start_under(config: &str, env: &[(&str, &str)], wrapper: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(&path, with_auth(config)).unwrap();
        let mut command = match wrapper.split_first() {
            None => host_command(&path, env),
            Some((program, args)) => {
                let direct = host_command(&path, env);
                let mut wrapped = Command::new(program);
                wrapped
                    .args(args)
                    .arg(direct.get_program())
                    .args(direct.get_args())
                    .env_clear()
                    .envs(direct.get_envs().filter_map(|(k, v)| Some((k, v?))));
                wrapped
            }
        };
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the host binary starts");
        let stderr = collect(child.stderr.take().unwrap());
        let (line_tx, line_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = line_tx.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            match line_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(url) = line
                        .strip_prefix("mcp-wasm-host listening on http://")
                        .or_else(|| line.strip_prefix("mcp-wasm-host listening on https://"))
                    {
                        let addr = url.trim_end_matches("/mcp");
                        break addr.parse().expect("a socket address");
                    }
                }
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "host exited with {status} before listening:\n{}",
                            stderr.lock().unwrap()
                        );
                    }
                    assert!(
                        Instant::now() < deadline,
                        "host did not listen within {START_TIMEOUT:?}:\n{}",
                        stderr.lock().unwrap()
                    );
                }
            }
        };
        let host = Self {
            child,
            addr,
            stderr,
            config: path,
            _dir: dir,
        };
        // The host writes its log on a thread of its own: what it logged while
        // starting (e.g. a setup code) may follow the address on stdout.
        host.wait_for_log("serving MCP at /mcp", START_TIMEOUT);
        host
    }

    /// The host's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Everything the host wrote to stderr (its log) so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// How many file descriptors the host process has open (Linux): (sockets, others).
    #[cfg(target_os = "linux")]
    pub fn open_fds(&self) -> (usize, usize) {
        let fds =
            std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).expect("/proc is mounted");
        let (mut sockets, mut others) = (0, 0);
        for fd in fds.flatten() {
            match std::fs::read_link(fd.path()) {
                Ok(target) if target.to_string_lossy().starts_with("socket:") => sockets += 1,
                _ => others += 1,
            }
        }
        (sockets, others)
    }

    /// Kills the host at once (SIGKILL): no chance to finish anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The config file the host was started on (a test may rewrite it).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Sends the host `signal`.
    #[cfg(unix)]
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("a pid");
        rustix::process::kill_process(pid, signal).expect("signalled");
    }

    /// Asks the host to stop (SIGTERM) and waits up to `timeout` for it to exit.
    #[cfg(unix)]
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.signal(rustix::process::Signal::TERM);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the host did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where the log ends now: pass it to [`Host::wait_for_log_since`].
    pub fn log_mark(&self) -> usize {
        self.stderr.lock().unwrap().len()
    }

    /// Waits up to `timeout` for the log written after `mark` to contain `needle`;
    /// returns that part of the log.
    pub fn wait_for_log_since(&self, mark: usize, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log()[mark..].to_owned();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` for a line of the log to satisfy `wanted`; returns the log.
    /// Log lines reach the test some time after the answers they describe: the host
    /// writes them on a thread of its own, and the test reads them through a pipe.
    pub fn wait_for_line(&self, wanted: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.lines().any(&wanted) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` for the log to contain `needle`; returns the log.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.contains(needle) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- host log ---\n{}--- end of host log ---", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the host with `config` and `env` and expects it to refuse to start; returns
/// its exit status and stderr.
pub fn start_refused(config: &str, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("host.toml");
    std::fs::write(&path, with_auth(config)).unwrap();
    let mut child = host_command(&path, env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the host binary starts");
    let mut pipe = child.stderr.take().unwrap();
    // Reads until the host exits (or is killed) and its end of the pipe closes.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, reader.join().unwrap());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "host did not exit within {START_TIMEOUT:?}:\n{}",
                reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the host binary with `args`; returns (status, stdout, stderr).
pub fn run_host(args: &[&str]) -> (ExitStatus, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"))
        .args(args)
        .env_clear()
        .env("RUST_LOG", "warn")
        .output()
        .expect("the host binary runs");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `command` (the host binary with its arguments) with `input` on standard input;
/// returns its status, stdout and stderr.
pub fn run_with_input(mut command: Command, input: &str) -> (ExitStatus, String, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the host binary runs");
    // A command that reads nothing may have exited already.
    let _ = std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes());
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `config` as the host gets it: a config that does not say how to authenticate runs
/// with authentication off, so tests about something else need no tokens. Tests about
/// authentication write an `[auth]` section.
pub fn with_auth(config: &str) -> String {
    if config.contains("[auth]") {
        config.to_owned()
    } else {
        format!("{config}\n[auth]\nmode = \"off\"\n")
    }
}

fn host_command(config: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-wasm-host"));
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env_clear()
        .env("RUST_LOG", "info")
        .envs(env.iter().copied());
    command
}

fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
    text
}
