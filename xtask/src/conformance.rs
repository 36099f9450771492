//! `cargo xtask conformance --suite DIR`: runs Spin's conformance tests (a local checkout of
//! github.com/fermyon/conformance-tests) against `caseport up` and prints a table.
//!
//! For each test it builds the suite's components (core wasm modules, `wasm32-unknown-unknown`,
//! built with the suite's own Cargo.lock into `target/conformance/`), starts the services the
//! test names (the suite's Python echo servers), fills the manifest's `%{source=…}` and
//! `%{port=…}` templates, starts `caseport up` on it and checks each invocation as the suite's
//! own assertions do: the status, the body, every expected header, and no other header.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use caseport_tests::{Server, Up, root};
use serde::Deserialize;

/// What `caseport up` does not provide, as the issue that asked for this runner says: Redis,
/// MQTT and PostgreSQL. Their tests are expected to be refused at start with one clear line.
const NOT_CLAIMED: &[&str] = &["outbound-redis", "outbound-mqtt", "postgres"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestConfig {
    invocations: Vec<Invocation>,
    #[serde(default)]
    preconditions: Vec<Precondition>,
}

#[derive(Deserialize)]
struct Invocation {
    request: Request,
    response: Expected,
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    method: Option<String>,
    path: String,
    #[serde(default)]
    headers: Vec<RequestHeader>,
    #[serde(default)]
    body: Option<String>,
}

#[derive(Deserialize)]
struct RequestHeader {
    name: String,
    value: String,
}

#[derive(Deserialize)]
struct Expected {
    #[serde(default = "ok")]
    status: u16,
    headers: Vec<ExpectedHeader>,
    body: Option<String>,
}

fn ok() -> u16 {
    200
}

#[derive(Deserialize)]
struct ExpectedHeader {
    name: String,
    value: Option<String>,
    #[serde(default)]
    optional: bool,
}

#[derive(Deserialize)]
struct Precondition {
    kind: String,
}

/// A Python service of the suite, stopped when dropped.
struct Service {
    child: Child,
    /// Guest port → port on this machine, as the script prints them (`PORT=(80,41234)`).
    ports: BTreeMap<u16, u16>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_service(suite: &Path, kind: &str) -> Result<Service> {
    let script = suite.join(format!("crates/test-environment/services/{kind}.py"));
    let mut child = Command::new("python3")
        .arg(&script)
        .current_dir(suite)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", script.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut ports = BTreeMap::new();
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next() {
        let line = line?;
        if let Some(pair) = line
            .strip_prefix("PORT=(")
            .and_then(|r| r.strip_suffix(')'))
        {
            let (guest, host) = pair.split_once(',').context("malformed PORT line")?;
            ports.insert(guest.trim().parse()?, host.trim().parse()?);
        }
        if line.trim() == "READY" {
            // The services log each request to standard output: keep reading it, or their
            // next write fails and takes the answer with it.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(Service { child, ports });
        }
    }
    bail!("{kind} exited before it was ready")
}

/// Replaces `%{key=value}` templates with what `f` answers.
fn fill(text: &str, mut f: impl FnMut(&str, &str) -> Result<String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("%{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .context("unterminated %{ template")?;
        let (key, value) = rest[start + 2..start + end]
            .split_once('=')
            .context("a template is %{key=value}")?;
        out.push_str(&f(key.trim(), value.trim())?);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Builds every component of the suite; answers each component directory's wasm file.
fn build_components(suite: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-unknown-unknown"])
        .current_dir(root())
        .stdout(Stdio::null())
        .status()
        .context("rustup")?;
    if !status.success() {
        bail!("rustup target add wasm32-unknown-unknown failed");
    }
    let target_dir = root().join("target/conformance");
    let out = target_dir.join("wasm32-unknown-unknown/release");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .arg("--manifest-path")
        .arg(suite.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(root());
    let mut wasm = BTreeMap::new();
    for entry in std::fs::read_dir(suite.join("components"))? {
        let dir = entry?.path();
        let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let manifest: toml::Table = text.parse()?;
        let package = manifest
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|n| n.as_str())
            .context("a component without a package name")?;
        let lib = manifest
            .get("lib")
            .and_then(|l| l.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or(package);
        build.args(["-p", package]);
        let component = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        wasm.insert(
            component.to_string(),
            out.join(format!("{}.wasm", lib.replace('-', "_"))),
        );
    }
    if !build.status().context("cargo build")?.success() {
        bail!("building the suite's components failed");
    }
    Ok(wasm)
}

/// The outcome of one test.
enum Outcome {
    Passed,
    Failed(String),
    /// Not claimed: refused at start, with this line.
    Refused(String),
}

fn run_test(suite: &Path, wasm: &BTreeMap<String, PathBuf>, test: &Path) -> Result<Outcome> {
    let name = test
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let config: TestConfig = json5::from_str(&std::fs::read_to_string(test.join("test.json5"))?)
        .context("test.json5")?;
    let claimed = !NOT_CLAIMED.iter().any(|n| name.starts_with(n));
    let mut services = Vec::new();
    for p in &config.preconditions {
        match p.kind.as_str() {
            "http-echo" | "tcp-echo" => services.push(start_service(suite, &p.kind)?),
            // The default store and database are there without set-up.
            "key-value-store" | "sqlite" => {}
            _ if !claimed => {}
            other => bail!("unknown precondition {other}"),
        }
    }
    let port = |guest: &str| -> Result<String> {
        let guest: u16 = guest.parse()?;
        services
            .iter()
            .find_map(|s| s.ports.get(&guest))
            .map(u16::to_string)
            // A port no service exposes (the test expects the connection to be refused).
            .map_or_else(|| Ok(guest.to_string()), Ok)
    };
    let manifest = fill(
        &std::fs::read_to_string(test.join("spin.toml"))?,
        |key, value| match key {
            "source" => wasm
                .get(value)
                .map(|p| p.display().to_string())
                .with_context(|| format!("no component {value} in the suite")),
            "port" => port(value),
            other => bail!("unknown template key {other}"),
        },
    )?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("spin.toml"), manifest)?;
    let up = Up {
        manifest: Some(dir.path().join("spin.toml")),
        ..Up::default()
    }
    .args(["--allow-host", "example.com"]);
    if !claimed {
        return Ok(match up.fail("127.0.0.1:0") {
            Ok((_, output)) => Outcome::Refused(
                output
                    .lines()
                    .find(|l| l.starts_with("Error: "))
                    .unwrap_or("(no error line)")
                    .to_string(),
            ),
            Err(e) => Outcome::Failed(format!("expected a refusal at start: {e:#}")),
        });
    }
    let app = up.start()?;
    for (i, invocation) in config.invocations.iter().enumerate() {
        if let Err(e) = invoke(&app, invocation, &port) {
            return Ok(Outcome::Failed(format!("invocation {i}: {e:#}")));
        }
    }
    Ok(Outcome::Passed)
}

/// Sends one invocation and checks the answer as the suite's `assert_response` does.
fn invoke(
    app: &Server,
    invocation: &Invocation,
    port: &dyn Fn(&str) -> Result<String>,
) -> Result<()> {
    let request = &invocation.request;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = app.url(&request.path);
    let method = request.method.as_deref().unwrap_or("get").to_uppercase();
    let mut builder = http::Request::builder().method(method.as_str()).uri(&url);
    for h in &request.headers {
        let value = fill(&h.value, |key, value| match key {
            "port" => port(value),
            other => bail!("unknown template key {other}"),
        })?;
        builder = builder.header(h.name.as_str(), value);
    }
    let body = request.body.clone().unwrap_or_default();
    let mut answer = agent
        .run(builder.body(body)?)
        .with_context(|| format!("{method} {url}"))?;
    let status = answer.status().as_u16();
    let mut headers: BTreeMap<String, String> = answer
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_lowercase(),
                v.to_str().unwrap_or_default().to_lowercase(),
            )
        })
        .collect();
    let body = answer.body_mut().read_to_string().unwrap_or_default();
    let expected = &invocation.response;
    if status != expected.status {
        bail!(
            "status {status}, expected {} (body: {body})",
            expected.status
        );
    }
    let expected_body = expected.body.clone().unwrap_or_default();
    if body != expected_body {
        bail!("body {body:?}, expected {expected_body:?}");
    }
    for h in &expected.headers {
        match headers.remove(&h.name.to_lowercase()) {
            None if h.optional => {}
            None => bail!("header {} missing", h.name),
            Some(actual) => {
                if let Some(value) = &h.value
                    && actual != value.to_lowercase()
                {
                    bail!("header {}: {actual:?}, expected {value:?}", h.name);
                }
            }
        }
    }
    if !headers.is_empty() {
        bail!("unexpected headers: {headers:?}");
    }
    Ok(())
}

pub fn section(args: &[String]) -> Result<()> {
    let suite = match args {
        [flag, dir] if flag == "--suite" => PathBuf::from(dir),
        _ => bail!(
            "usage: cargo xtask conformance --suite DIR (a checkout of github.com/fermyon/conformance-tests)"
        ),
    };
    let suite = suite
        .canonicalize()
        .with_context(|| format!("{} does not exist", suite.display()))?;
    let started = Instant::now();
    let wasm = build_components(&suite)?;
    let mut tests: Vec<PathBuf> = std::fs::read_dir(suite.join("tests"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("test.json5").is_file())
        .collect();
    tests.sort();
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&suite)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("## Spin conformance tests against `caseport up`\n");
    println!(
        "Suite: fermyon/conformance-tests at {commit}, components built for wasm32-unknown-unknown (core modules).\n"
    );
    println!("| test | result | detail |\n|---|---|---|");
    let (mut passed, mut failed, mut refused) = (0, 0, 0);
    for test in &tests {
        let name = test.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let (result, detail) = match run_test(&suite, &wasm, test) {
            Ok(Outcome::Passed) => {
                passed += 1;
                ("pass", String::new())
            }
            Ok(Outcome::Refused(line)) => {
                refused += 1;
                ("not claimed: refused at start", line)
            }
            Ok(Outcome::Failed(why)) => {
                failed += 1;
                ("**FAIL**", why)
            }
            Err(e) => {
                failed += 1;
                ("**FAIL**", format!("{e:#}"))
            }
        };
        println!(
            "| {name} | {result} | {} |",
            detail.replace('|', "\\|").replace('\n', " ")
        );
    }
    println!(
        "\n{passed} passed, {failed} failed, {refused} not claimed (refused at start), in {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        bail!("{failed} conformance tests failed");
    }
    Ok(())
}
