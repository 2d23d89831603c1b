//! Real Postgres and Redis servers for the replica tests: Debian's packages, each
//! started on 127.0.0.1 on a port the OS picked, its data in a temp folder, stopped on
//! drop. (Postgres refuses to run as root: as root, it runs as the `postgres` user the
//! package made.)

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on `port`.
fn wait_for_port(port: u16, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The folder of the newest installed Postgres's programs.
fn postgres_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Postgres is installed (scripts/test.sh installs Debian's postgresql)")
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort_by_key(|bin| {
        bin.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().expect("an initdb under /usr/lib/postgresql")
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `program` from Postgres's folder, as the `postgres` user when we are root.
fn postgres_command(program: &str) -> Command {
    let path = postgres_bin().join(program);
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    }
}

/// A Postgres server with one database, `auth`, owned by the user in [`Postgres::url`].
pub struct Postgres {
    pub port: u16,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Postgres {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown the data folder to postgres");
        }
        let password_file = dir.path().join("pw");
        std::fs::write(&password_file, "test-password\n").unwrap();
        if is_root() {
            Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&password_file)
                .status()
                .unwrap();
        }
        let output = postgres_command("initdb")
            .args(["-D"])
            .arg(&data)
            .args(["-U", "mcp", "--auth=scram-sha-256", "--pwfile"])
            .arg(&password_file)
            .args(["--no-sync", "-E", "UTF8", "--locale=C"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let port = free_port();
        let postgres = Self {
            port,
            data,
            _dir: dir,
        };
        postgres.run();
        let output = postgres_command("createdb")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "mcp",
                "auth",
            ])
            .env("PGPASSWORD", "test-password")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        postgres
    }

    /// Starts the server (after [`Postgres::start`] made it, or after a stop).
    fn run(&self) {
        let log = self.data.parent().unwrap().join("postgres.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories='' \
             -c fsync=off -c max_connections=100",
            self.port
        );
        let output = postgres_command("pg_ctl")
            .args(["-D"])
            .arg(&self.data)
            .args(["-l"])
            .arg(&log)
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        wait_for_port(self.port, "postgres", Duration::from_secs(30));
    }

    /// Stops the server at once (its clients' connections break).
    pub fn stop(&self) {
        let output = postgres_command("pg_ctl")
            .args(["-D"])
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts it again after [`Postgres::stop`].
    pub fn restart(&self) {
        self.run();
    }

    /// The URL replicas connect with (a password, as in production).
    pub fn url(&self) -> String {
        format!("postgres://mcp:test-password@127.0.0.1:{}/auth", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = postgres_command("pg_ctl")
            .args(["-D"])
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A Redis server, no persistence; [`Redis::stop`] and [`Redis::restart`] for the
/// tests of a store that goes away.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL): its clients see connections refused.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing was saved).
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new(redis_server())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test.sh installs Debian's redis-server)");
        self.child = Some(child);
        wait_for_port(self.port, "redis-server", Duration::from_secs(30));
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn redis_server() -> &'static Path {
    ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .unwrap_or(Path::new("redis-server"))
}
