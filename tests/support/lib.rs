//! Test support: builds the runtime and the wasm components once per test run, starts
//! `caseport up` on a free port with a fresh state directory, and talks to it over HTTP.

// Test support fails loudly: a panic here is a failed test with its reason.
#![allow(clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub mod checks;
pub mod fake_mail;
pub mod fuzz;
pub mod packages;
pub mod services;
pub mod webdriver;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The application whose components are core wasm modules.
pub fn core_manifest() -> PathBuf {
    root().join("tests/fixtures/core/spin.toml")
}

/// The test probe application's manifest.
pub fn probe_manifest() -> PathBuf {
    root().join("tests/fixtures/probe/spin.toml")
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Builds `caseport` and every wasm component, once per test binary; returns the binary.
pub fn caseport_binary() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let run = |mut c: Command, what: &str| -> Result<(), String> {
            let status = c
                .status()
                .map_err(|e| format!("cannot run cargo for {what}: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("building {what} failed: {status}"))
            }
        };
        let mut host = cargo();
        host.args(["build", "--release", "-p", "caseport", "--bin", "caseport"]);
        run(host, "the runtime")?;
        let binary = root().join("target/release/caseport");
        // `caseport build` is `spin build`: it installs the wasm32-wasip2 target that
        // rust-toolchain.toml names (cargo does not), then runs each build command.
        // The core-module test component needs one more target, which only the tests use
        // (rust-toolchain.toml names only what the application needs).
        let mut targets = Command::new("rustup");
        targets
            .args(["target", "add", "wasm32-wasip1"])
            .current_dir(root())
            .stdout(Stdio::null());
        run(targets, "rustup target add (for tests/core-module)")?;
        for manifest in [root().join("spin.toml"), probe_manifest(), core_manifest()] {
            let mut build = Command::new(&binary);
            build.arg("build").arg("--from").arg(&manifest);
            run(build, &format!("the components of {}", manifest.display()))?;
        }
        Ok(binary)
    });
    match built {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// How to start `caseport up`.
#[derive(Clone, Default)]
pub struct Up {
    pub manifest: Option<PathBuf>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub state_dir: Option<PathBuf>,
    /// The working directory (where a `.env` file is read); the test's own by default.
    pub cwd: Option<PathBuf>,
    /// Where its output goes instead of being captured (as an operator's log file would be):
    /// for benchmarks, whose numbers must not include this process reading the request log.
    pub log_file: Option<PathBuf>,
}

impl Up {
    /// The Caseport application itself, with spin.toml's defaults (no mail provider, no
    /// demo data: a production start).
    pub fn caseport() -> Self {
        Self::default()
    }

    /// Caseport as the README's run command starts it: demo data and the local mailbox.
    pub fn local() -> Self {
        Self::caseport()
            .variable("demo_data", "true")
            .variable("mail_provider", "dev-mailbox")
    }

    /// The probe application, with its one required variable set.
    pub fn probe() -> Self {
        Self {
            manifest: Some(probe_manifest()),
            args: vec!["--variable".into(), "api_token=test-token".into()],
            ..Self::default()
        }
    }

    /// Adds command-line arguments.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Adds several command-line arguments.
    pub fn args(mut self, args: impl IntoIterator<Item = &'static str>) -> Self {
        self.args.extend(args.into_iter().map(str::to_string));
        self
    }

    /// Adds `--variable name=value`.
    pub fn variable(self, name: &str, value: &str) -> Self {
        self.arg("--variable").arg(format!("{name}={value}"))
    }

    /// Sets an environment variable for the process.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Starts with `--runtime-config-file path`.
    pub fn runtime_config(self, path: &Path) -> Self {
        self.arg("--runtime-config-file")
            .arg(path.to_string_lossy().into_owned())
    }

    /// Reuses a state directory (to check what survives a restart).
    pub fn state_dir(mut self, dir: &Path) -> Self {
        self.state_dir = Some(dir.to_path_buf());
        self
    }

    fn command(&self, state: &Path, listen: &str) -> Command {
        let mut c = Command::new(caseport_binary());
        c.arg("up")
            .arg("--from")
            .arg(self.manifest.clone().unwrap_or_else(root))
            .args(["--listen", listen])
            .arg("--state-dir")
            .arg(state)
            .args(&self.args)
            .env_remove("RUST_LOG")
            .env_remove("SPIN_HTTP_LISTEN_ADDR")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("XDG_CACHE_HOME", root().join("target/test-cache"))
            .stdin(Stdio::null());
        match self.log_file.as_ref().map(std::fs::File::create) {
            Some(Ok(file)) => {
                let copy = file.try_clone().map_or(Stdio::null(), Stdio::from);
                c.stdout(file).stderr(copy);
            }
            Some(Err(e)) => panic!("cannot create the log file: {e}"),
            None => {
                c.stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        }
        if let Some(dir) = &self.cwd {
            c.current_dir(dir);
        }
        die_with_parent(&mut c);
        c
    }

    /// Starts the server and waits until it listens.
    pub fn start(self) -> Result<Server> {
        self.launch("127.0.0.1:0", false)
    }

    /// Starts the server with `dir` as its working directory.
    pub fn start_in(mut self, dir: &Path) -> Result<Server> {
        self.cwd = Some(dir.to_path_buf());
        self.start()
    }

    /// Starts the server alone in a private network namespace (`unshare --net`, as root),
    /// whose loopback interface also carries [`ISOLATED_IP`]: there it listens on every
    /// address and can be reached from an address that is not loopback, while nothing
    /// outside the namespace can reach it. Talk to it inside [`Server::in_network`].
    pub fn start_isolated(self) -> Result<Server> {
        self.launch("0.0.0.0:0", true)
    }

    fn launch(self, listen: &str, isolated: bool) -> Result<Server> {
        let temp = tempfile::tempdir()?;
        let state = self
            .state_dir
            .clone()
            .unwrap_or_else(|| temp.path().join("state"));
        let mut command = self.command(&state, listen);
        if isolated {
            command = in_private_network(&command)?;
        }
        let mut child = command.spawn()?;
        let output = Output::capture(&mut child);
        let logged = || match &self.log_file {
            Some(path) => std::fs::read_to_string(path).unwrap_or_default(),
            None => output.text(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(base) = logged().lines().find_map(|line| {
                line.strip_prefix("Serving ")
                    .and_then(|rest| rest.split(" at http://").nth(1))
                    .map(str::to_string)
            }) {
                return Ok(Server {
                    child,
                    base,
                    output,
                    state,
                    _temp: temp,
                });
            }
            if let Some(status) = child.try_wait()? {
                output.wait_closed();
                bail!("caseport up exited with {status}:\n{}", logged());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("caseport up did not start in time:\n{}", logged());
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Runs `caseport up` expecting it to fail before serving; returns its status and output.
    pub fn fail(self, listen: &str) -> Result<(ExitStatus, String)> {
        let temp = tempfile::tempdir()?;
        let mut child = self.command(&temp.path().join("state"), listen).spawn()?;
        let output = Output::capture(&mut child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                output.wait_closed();
                return Ok((status, output.text()));
            }
            if Instant::now() > deadline || output.text().contains("Serving ") {
                let _ = child.kill();
                bail!(
                    "caseport up was expected to fail but kept running:\n{}",
                    output.text()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Makes the child get SIGKILL when the thread that started it ends, so that a test run that
/// is itself killed (a timeout, Ctrl-C) leaves no server behind. Servers are started and
/// dropped by the test's own thread.
pub(crate) fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2),
    // which is async-signal-safe.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
}

/// The address that is not loopback in the private network of [`Up::start_isolated`].
pub const ISOLATED_IP: &str = "10.77.0.1";

/// `command`, run in a new network namespace that has only the loopback interface, up, with
/// [`ISOLATED_IP`] added to it.
fn in_private_network(command: &Command) -> Result<Command> {
    packages::ensure(&[("ip", "iproute2")]);
    let ip =
        packages::find_program(&["ip"]).context("`ip` (Debian package iproute2) is missing")?;
    let mut c = Command::new("unshare");
    c.args(["--net", "--", "sh", "-c"])
        .arg(format!(
            "{ip} link set lo up && {ip} addr add {ISOLATED_IP}/32 dev lo && exec \"$@\""
        ))
        .arg("sh")
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut c);
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    Ok(c)
}

/// The combined stdout and stderr of a child, collected as it arrives.
#[derive(Clone, Default)]
pub struct Output {
    lines: Arc<Mutex<Vec<String>>>,
    open: Arc<AtomicUsize>,
}

impl Output {
    fn capture(child: &mut Child) -> Self {
        let out = Self::default();
        let streams: Vec<Box<dyn Read + Send>> = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        .collect();
        for stream in streams {
            let lines = out.lines.clone();
            let open = out.open.clone();
            open.fetch_add(1, Ordering::SeqCst);
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut l) = lines.lock() {
                        l.push(line);
                    }
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
        }
        out
    }

    fn wait_closed(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything printed so far.
    pub fn text(&self) -> String {
        self.lines.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

/// A running `caseport up`, stopped when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    pub output: Output,
    pub state: PathBuf,
    _temp: tempfile::TempDir,
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn reply(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Reply> {
    let mut r = r.context("HTTP request failed")?;
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let body = r
        .body_mut()
        .with_config()
        .limit(50 << 20)
        .read_to_string()?;
    Ok(Reply {
        status: r.status().as_u16(),
        headers,
        body,
    })
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `f` on a thread inside the server's network namespace (see
    /// [`Up::start_isolated`]); only that thread moves.
    pub fn in_network<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let pid = self.child.id();
        thread::scope(|scope| {
            scope
                .spawn(move || {
                    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
                        .unwrap_or_else(|e| panic!("the server's network namespace: {e}"));
                    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                        .unwrap_or_else(|e| panic!("enter the server's network namespace: {e}"));
                    f()
                })
                .join()
                .unwrap_or_else(|_| panic!("the request thread failed"))
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.base
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_default()
    }

    /// GET `url` (absolute) with extra headers.
    pub fn get_url(url: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = agent().get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        reply(req.call()).unwrap_or_else(|e| panic!("GET {url}: {e:#}"))
    }

    /// The absolute URL of `path`.
    /// The address of `path` on this server under another host name (such as a demo
    /// clinic's `south.localhost`, which browsers resolve to loopback themselves).
    pub fn url_at(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.base)
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> Reply {
        self.get_with(path, &[])
    }

    /// GET `path` with extra headers.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = agent().get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        reply(req.call()).unwrap_or_else(|e| panic!("GET {path}: {e:#}"))
    }

    /// Sends `body` with `method` to `path`.
    pub fn send(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        let url = self.url(path);
        let result = match method {
            "POST" => agent().post(&url).send(body),
            "PUT" => agent().put(&url).send(body),
            "PATCH" => agent().patch(&url).send(body),
            other => panic!("unsupported method {other}"),
        };
        reply(result).unwrap_or_else(|e| panic!("{method} {path}: {e:#}"))
    }

    /// Sends raw bytes over a new TCP connection and returns the raw answer (for requests an
    /// HTTP client library would not send, such as a chunked body with no length).
    pub fn raw(&self, request: &[u8]) -> String {
        let mut stream = std::net::TcpStream::connect(&self.base)
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.base));
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        stream
            .write_all(request)
            .unwrap_or_else(|e| panic!("write: {e}"));
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Waits until the output contains `needle` (log lines are written as requests end).
    pub fn wait_for_output(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.output.text().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Kills the server at once (SIGKILL), as a crash or an out-of-memory killer would, and
    /// waits until it is dead (requests in flight then fail on the client's side).
    pub fn kill(&self) {
        let pid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Dead: gone, or a zombie until it is reaped.
            if state.is_empty()
                || state
                    .rsplit(')')
                    .next()
                    .is_some_and(|s| s.trim_start().starts_with('Z'))
            {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Asks the server to stop (SIGTERM) and waits for it to exit.
    pub fn stop(mut self) -> Result<(ExitStatus, String)> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.output.wait_closed();
                return Ok((status, self.output.text()));
            }
            if Instant::now() > deadline {
                bail!("caseport up did not stop after SIGTERM");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP server on 127.0.0.1 standing in for the outside world: it answers every
/// request with `status` and `body`, and counts the connections it accepted.
pub struct Upstream {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
}

impl Upstream {
    /// Starts answering in a background thread; it lives as long as the test process.
    pub fn start(status: u16, body: &'static str) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(match stream.try_clone() {
                    Ok(s) => s,
                    Err(_) => continue,
                });
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Ok(Self { port, hits })
    }

    /// A port on which nothing listens.
    pub fn closed_port() -> Result<u16> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        Ok(listener.local_addr()?.port())
    }
}

/// POSTs a JSON body with extra headers.
pub fn post_json_with(
    server: &Server,
    path: &str,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = agent()
        .post(server.url(path))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    reply(req.send(body.to_string().as_bytes())).unwrap_or_else(|e| panic!("POST {path}: {e:#}"))
}

impl Server {
    /// Sends `method` to `path` with an optional JSON body and extra headers.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = self.url(path);
        let agent = agent();
        let with_headers = |mut req: ureq::RequestBuilder<ureq::typestate::WithBody>| {
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            req.header("content-type", "application/json")
        };
        let result = match (method, body) {
            ("GET", _) => {
                let mut req = agent.get(&url);
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.call()
            }
            ("DELETE", _) => {
                let mut req = agent.delete(&url);
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.call()
            }
            ("POST", b) => with_headers(agent.post(&url))
                .send(b.map(|b| b.to_string()).unwrap_or_default().as_bytes()),
            ("PUT", b) => with_headers(agent.put(&url))
                .send(b.map(|b| b.to_string()).unwrap_or_default().as_bytes()),
            ("PATCH", b) => with_headers(agent.patch(&url))
                .send(b.map(|b| b.to_string()).unwrap_or_default().as_bytes()),
            (other, _) => panic!("unsupported method {other}"),
        };
        reply(result).unwrap_or_else(|e| panic!("{method} {path}: {e:#}"))
    }

    /// POSTs JSON.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Reply {
        self.call("POST", path, Some(body), &[])
    }

    /// The application's SQLite database, opened beside the running server.
    pub fn db(&self) -> caseport_shared::native::NativeDb {
        caseport_shared::native::NativeDb::open(&self.state.join("sqlite_db.db"))
            .unwrap_or_else(|e| panic!("open the database: {e}"))
    }

    /// The one integer `sql` answers, read from the database beside the running server.
    pub fn count(&self, sql: &str) -> i64 {
        use caseport_shared::ports::Db;
        self.db()
            .execute(sql, &[])
            .ok()
            .and_then(|rows| rows.first().and_then(|r| r.int(0)))
            .unwrap_or_else(|| panic!("no integer from {sql}"))
    }

    /// Signs in and returns the `name=value` of the session cookie.
    pub fn sign_in(&self, realm: &str, username: &str, password: &str) -> String {
        let r = self.post(
            "/api/auth/login",
            &serde_json::json!({ "realm": realm, "username": username, "password": password }),
        );
        assert_eq!(r.status, 200, "sign-in of {username}: {}", r.body);
        r.session_cookie()
            .unwrap_or_else(|| panic!("no session cookie: {r:?}"))
    }
}

impl Reply {
    /// The `name=value` part of the `Set-Cookie` that carries the session, if any.
    pub fn session_cookie(&self) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.split(';').next())
            .find(|c| c.starts_with(SESSION_COOKIE) && c.len() > SESSION_COOKIE.len())
            .map(str::to_string)
    }
}

/// The name and `=` of the session cookie.
pub const SESSION_COOKIE: &str = "__Host-caseport_session=";

/// The demo accounts (README, "Two commands").
pub mod demo {
    pub const CASEY: (&str, &str) = ("casey.manager@example.org", "caseport-demo-manager");
    pub const ROBIN: (&str, &str) = ("robin.support@example.org", "caseport-demo-support");
    pub const ADMIN: (&str, &str) = ("admin@example.org", "caseport-demo-admin");
    /// The operators' administrator, on `operator.localhost`.
    pub const OPERATOR: (&str, &str) = ("operator@example.org", "caseport-demo-operator");
}

/// A signed-in staff member's requests.
pub struct Staff<'a> {
    pub app: &'a Server,
    pub cookie: String,
}

impl<'a> Staff<'a> {
    /// Signs `who` (username, password) in to the staff console.
    pub fn sign_in(app: &'a Server, who: (&str, &str)) -> Self {
        Self {
            app,
            cookie: app.sign_in("staff", who.0, who.1),
        }
    }

    /// GET `path` with the session.
    pub fn get(&self, path: &str) -> Reply {
        self.app
            .call("GET", path, None, &[("cookie", &self.cookie)])
    }

    /// Sends JSON with the session.
    pub fn send(&self, method: &str, path: &str, body: &serde_json::Value) -> Reply {
        self.app
            .call(method, path, Some(body), &[("cookie", &self.cookie)])
    }

    /// Corrects a client's email as Client Information does, at the version it reads.
    pub fn correct_email(&self, id: i64, email: &str) -> Reply {
        let version = self.get(&format!("/api/clients/{id}")).json()["client"]["version"].clone();
        self.send(
            "PATCH",
            &format!("/api/clients/{id}"),
            &serde_json::json!({ "version": version, "email": email }),
        )
    }
}

/// Caseport as the README runs it (demo data, the local mailbox), schema and data already in
/// place (the first request migrates and loads them).
pub fn demo_app() -> Server {
    let app = Up::local()
        .start()
        .unwrap_or_else(|e| panic!("start caseport: {e:#}"));
    assert_eq!(app.get("/api/auth/me").status, 401);
    app
}

impl Server {
    /// The id of the (demo) client with this first name, in clinic 1 (the one the loopback
    /// address is).
    pub fn client_id(&self, first_name: &str) -> i64 {
        use caseport_shared::ports::Db;
        // Any API request brings the schema and the demo data in.
        let _ = self.get("/api/auth/me");
        self.db()
            .execute(
                "SELECT id FROM clients WHERE clinic_id = 1 AND first_name = ?",
                &[first_name.into()],
            )
            .ok()
            .and_then(|rows| rows.first().and_then(|r| r.int(0)))
            .unwrap_or_else(|| panic!("no client named {first_name}"))
    }
}
