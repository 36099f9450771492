//! `cargo xtask bench-shared`: Caseport on local files against Caseport on Redis + a libSQL
//! server (Spin's runtime config), and one replica against two on the shared servers.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use caseport_tests::demo::{ADMIN, CASEY};
use caseport_tests::fake_mail::{FakeMail, Kind};
use caseport_tests::services::{Redis, Sqld, shared_runtime_config};
use caseport_tests::{Server, Staff, Up};
use serde_json::json;

use crate::procs::cpu_seconds;
use crate::{LOAD_SECONDS, fill, fill_statements, ms};

const CLIENTS: usize = 100_000;
const CALLS: usize = 30;
const TOKEN: &str = "bench-token";

/// Where the state lives for one run.
enum Backend {
    Files(tempfile::TempDir),
    Servers {
        redis: Redis,
        sqld: Sqld,
        config: std::path::PathBuf,
        _dir: tempfile::TempDir,
    },
}

impl Backend {
    fn label(&self) -> &'static str {
        match self {
            Backend::Files(_) => "local files",
            Backend::Servers { .. } => "Redis + libSQL",
        }
    }

    fn up(&self, fake: &FakeMail) -> Up {
        let up = Up::caseport()
            .variable("demo_data", "true")
            .variable("mail_provider", "postmark")
            .variable("mail_api_url", &fake.url())
            .variable("mail_api_token", TOKEN);
        match self {
            Backend::Files(dir) => up.state_dir(dir.path()),
            Backend::Servers { config, .. } => up.runtime_config(config),
        }
    }

    /// The processes that keep the state, besides Caseport.
    fn server_pids(&self) -> Vec<u32> {
        match self {
            Backend::Files(_) => Vec::new(),
            Backend::Servers { redis, sqld, .. } => vec![redis.pid(), sqld.pid()],
        }
    }

    /// Brings the schema and the demo in (a first request does), then 100,000 clients.
    fn fill(&self, fake: &FakeMail) -> Result<()> {
        {
            let app = self.up(fake).start()?;
            let _ = app.get("/api/auth/me");
        }
        match self {
            Backend::Files(dir) => {
                let db = caseport_shared::native::NativeDb::open(&dir.path().join("sqlite_db.db"))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                fill(&db, CLIENTS)
            }
            Backend::Servers { sqld, .. } => fill_remote(&sqld.url(), fill_statements(CLIENTS)),
        }
    }
}

/// Runs statements on a libSQL server through its HTTP API (Hrana over HTTP, `/v2/pipeline`),
/// each batch in one transaction.
fn fill_remote(url: &str, statements: Vec<String>) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for batch in statements.chunks(40) {
        let mut requests = vec![json!({ "type": "execute", "stmt": { "sql": "BEGIN" } })];
        requests.extend(
            batch
                .iter()
                .map(|sql| json!({ "type": "execute", "stmt": { "sql": sql } })),
        );
        requests.push(json!({ "type": "execute", "stmt": { "sql": "COMMIT" } }));
        requests.push(json!({ "type": "close" }));
        let mut answer = agent
            .post(&format!("{url}/v2/pipeline"))
            .header("content-type", "application/json")
            .send(
                json!({ "baton": null, "requests": requests })
                    .to_string()
                    .as_bytes(),
            )
            .context("the libSQL server")?;
        let body: serde_json::Value = serde_json::from_slice(&answer.body_mut().read_to_vec()?)?;
        let results = body["results"].as_array().cloned().unwrap_or_default();
        if let Some(failed) = results.iter().find(|r| r["type"] != "ok") {
            bail!("libSQL: {failed}");
        }
        if results.len() != batch.len() + 3 {
            bail!("libSQL answered {body}");
        }
    }
    Ok(())
}

/// One row: `calls` timed calls; CPU per call of Caseport and of the storage servers.
fn row(
    label: &str,
    backend: &Backend,
    app: &Server,
    mut call: impl FnMut(usize) -> Result<Duration>,
) -> Result<()> {
    let pids = backend.server_pids();
    let servers_cpu = || -> Result<f64> { pids.iter().map(|p| cpu_seconds(*p)).sum() };
    let (app_before, servers_before) = (cpu_seconds(app.pid())?, servers_cpu()?);
    let mut times = (0..CALLS).map(&mut call).collect::<Result<Vec<_>>>()?;
    let app_cpu = (cpu_seconds(app.pid())? - app_before) / CALLS as f64;
    let servers = (servers_cpu()? - servers_before) / CALLS as f64;
    times.sort();
    let servers = if pids.is_empty() {
        "–".to_string()
    } else {
        format!("{:.1}", servers * 1000.0)
    };
    println!(
        "| {label} | {} | {:.1} | {:.1} | {:.1} | {servers} |",
        backend.label(),
        ms(times[CALLS / 2]),
        ms(times[CALLS * 99 / 100]),
        app_cpu * 1000.0,
    );
    Ok(())
}

fn timed(what: &str, r: impl FnOnce() -> caseport_tests::Reply) -> Result<Duration> {
    let started = Instant::now();
    let reply = r();
    let took = started.elapsed();
    if reply.status != 200 {
        bail!("{what}: {} {}", reply.status, reply.body);
    }
    Ok(took)
}

fn operations(backend: &Backend, fake: &FakeMail) -> Result<()> {
    let app = backend.up(fake).start()?;
    let casey = Staff::sign_in(&app, CASEY);
    let admin = Staff::sign_in(&app, ADMIN);
    row("sign-in (right password)", backend, &app, |_| {
        timed("sign-in", || {
            app.post(
                "/api/auth/login",
                &json!({ "realm": "staff", "username": CASEY.0, "password": CASEY.1 }),
            )
        })
    })?;
    let mut ids = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let r = casey.send(
            "POST",
            "/api/clients",
            &json!({ "first_name": format!("Bench{i}"), "last_name": "Shared", "dob": "2010-01-01", "email": format!("bench{i}.shared@example.com") }),
        );
        ids.push(r.json()["client"]["id"].as_i64().context("client id")?);
    }
    row("Reset and Send New (Postmark format)", backend, &app, |i| {
        let id = ids[i];
        timed("reset", || {
            casey.send(
                "POST",
                &format!("/api/clients/{id}/portal-password/reset"),
                &json!({ "delivery": "email", "idempotency_key": format!("bench-shared-{i:04}") }),
            )
        })
    })?;
    row(
        "My Caseload, all clients, first page",
        backend,
        &app,
        |_| timed("caseload", || admin.get("/api/caseload?scope=all")),
    )?;
    row("My Caseload, all clients, search", backend, &app, |_| {
        timed("search", || admin.get("/api/caseload?scope=all&q=Smith1"))
    })?;
    row("My Caseload, Casey's, first page", backend, &app, |_| {
        timed("mine", || casey.get("/api/caseload"))
    })?;
    Ok(())
}

/// `connections` clients reading Casey's caseload for LOAD_SECONDS, spread over `apps`.
fn replicas_row(label: &str, apps: &[&Server], cookie: &str, connections: usize) -> Result<()> {
    let addrs = apps
        .iter()
        .map(|a| a.base.parse())
        .collect::<Result<Vec<std::net::SocketAddr>, _>>()?;
    let mut run = crate::http_load::run(
        &addrs,
        "/api/caseload",
        &[("cookie", cookie)],
        connections,
        LOAD_SECONDS as f64,
    )?;
    if run.requests == 0 {
        bail!("{label}: no request succeeded ({} errors)", run.errors);
    }
    println!(
        "| {label} | {connections} | {:.0} | {:.1} | {:.1} | {} |",
        run.per_second(),
        run.micros(0.5) / 1000.0,
        run.micros(0.99) / 1000.0,
        run.errors
    );
    Ok(())
}

pub fn section() -> Result<()> {
    println!("\n## Local files against Redis + libSQL (runtime config)\n");
    println!(
        "{CALLS} sequential calls per row through `caseport up`, {CLIENTS} clients and 1,000 more staff; redis-server and sqld 0.24.32 on this machine (loopback), as the tests start them. CPU per call: Caseport's process, and redis-server + sqld together.\n"
    );
    println!(
        "| operation | state | p50 (ms) | p99 (ms) | Caseport CPU/call (ms) | Redis + sqld CPU/call (ms) |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    let fake = FakeMail::start(Kind::Postmark, TOKEN)?;
    let files = Backend::Files(tempfile::tempdir()?);
    let servers = {
        let redis = Redis::start()?;
        let sqld = Sqld::start()?;
        let dir = tempfile::tempdir()?;
        let config = shared_runtime_config(dir.path(), &redis, &sqld)?;
        Backend::Servers {
            redis,
            sqld,
            config,
            _dir: dir,
        }
    };
    for backend in [&files, &servers] {
        backend.fill(&fake)?;
        operations(backend, &fake)?;
    }

    println!("\n### One replica against two, on Redis + libSQL\n");
    println!(
        "Casey's My Caseload (session on Redis, query on sqld), keep-alive connections for {LOAD_SECONDS} s, spread evenly over the replicas.\n"
    );
    println!("| replicas | connections | requests/s | p50 (ms) | p99 (ms) | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    let a = servers.up(&fake).start()?;
    let b = servers.up(&fake).start()?;
    let cookie = a.sign_in("staff", CASEY.0, CASEY.1);
    for connections in [1, 8] {
        replicas_row("one", &[&a], &cookie, connections)?;
        replicas_row("two", &[&a, &b], &cookie, connections)?;
    }
    Ok(())
}
