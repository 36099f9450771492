//! `cargo xtask bench`: measures Caseport under `caseport up` on this machine and prints a
//! Markdown table for docs/BENCHMARKS.md. Figures, not pass/fail: nothing here is a test.

use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use caseport_tests::demo::CASEY;
use caseport_tests::{Up, caseport_binary, root};

use crate::procs::cpu_seconds;

const LOAD_SECONDS: u64 = 5;
const START_RUNS: usize = 5;

mod clinics;
mod conformance;
mod http_load;
mod procs;
mod shared;
mod speed;

fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("bench") => bench(),
        Some("bench-scale") => scale_section(),
        Some("bench-clinics") => clinics::section(),
        Some("bench-reset") => reset_section(),
        Some("bench-shared") => shared::section(),
        Some("bench-speed") => speed::section(),
        Some("bench-argon2") => argon2_section(),
        Some("bench-sign-in") => sign_in_section(),
        Some("bench-start") => start_section(caseport_binary()),
        // Load an already running server: `cargo xtask load ADDR PATH CONNECTIONS SECONDS
        // [HEADER: VALUE]` (for profiling).
        Some("load") => speed::load_only(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("conformance") => conformance::section(&std::env::args().skip(2).collect::<Vec<_>>()),
        Some("fuzz") => fuzz_section(),
        Some("flood") => flood_section(),
        _ => bail!(
            "usage: cargo xtask bench | bench-start | bench-speed | bench-argon2 | bench-sign-in | bench-scale | bench-clinics | bench-reset | bench-shared | conformance --suite DIR | fuzz | flood"
        ),
    }
}

fn bench() -> Result<()> {
    let binary = caseport_binary();
    println!("# Caseport benchmark\n");
    println!(
        "machine: {}, {} cores\n",
        machine(),
        thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    start_section(binary)?;
    speed::section()?;
    sign_in_section()?;
    reset_section()?;
    argon2_section()?;
    scale_section()?;
    clinics::section()?;
    Ok(())
}

/// Component sizes, time to the first page and the first sign-in after a start, and
/// instantiation per request.
fn start_section(binary: &std::path::Path) -> Result<()> {
    println!(
        "## Component sizes\n\n| component | bytes | KiB | under 1 MiB by (bytes) |\n|---|---:|---:|---:|"
    );
    let wasm_dir = root().join("target/wasm32-wasip2/wasm");
    for name in [
        "login",
        "caseload",
        "client_info",
        "reset_and_send",
        "operator",
        "web",
        "dev_mailbox",
    ] {
        let len = std::fs::metadata(wasm_dir.join(format!("caseport_{name}.wasm")))?.len();
        println!(
            "| {} | {len} | {:.0} | {} |",
            name.replace('_', "-"),
            len as f64 / 1024.0,
            (1u64 << 20) as i64 - len as i64
        );
    }

    println!("\n## Time to first response after start\n");
    println!(
        "Median of {START_RUNS} starts with demo data, timed from process start: the first `GET /` (only `web` is compiled before it), then the first sign-in (which waits for `login`, compiled in the background).\n"
    );
    println!(
        "| start | first page, median (ms) | min | max | first sign-in, median (ms) | min | max |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    let cache = tempfile::tempdir()?;
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..START_RUNS {
        let _ = std::fs::remove_dir_all(cache.path());
        cold.push(first_response(cache.path())?);
        warm.push(first_response(cache.path())?);
    }
    for (label, runs) in [
        ("cold (empty compile cache)", cold),
        ("warm (compile cache)", warm),
    ] {
        let mut cells = String::new();
        for pick in [
            |r: &(Duration, Duration)| r.0,
            |r: &(Duration, Duration)| r.1,
        ] {
            let mut times: Vec<Duration> = runs.iter().map(pick).collect();
            times.sort();
            cells.push_str(&format!(
                " {:.0} | {:.0} | {:.0} |",
                ms(times[times.len() / 2]),
                ms(times[0]),
                ms(times[times.len() - 1])
            ));
        }
        println!("| {label} |{cells}");
    }

    println!("\n## Instantiation per request\n");
    println!(
        "`caseport time-instantiation`: a fresh store and instance from the pre-instantiated component.\n"
    );
    let out = Command::new(binary)
        .args(["time-instantiation", "--iterations", "5000", "--from"])
        .arg(root())
        .output()
        .context("caseport time-instantiation")?;
    if !out.status.success() {
        bail!(
            "time-instantiation failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!("| component | mean (µs) | p50 (µs) | p99 (µs) |\n|---|---:|---:|---:|");
    for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() >= 4 {
            println!("| {} | {} | {} | {} |", f[0], f[1], f[2], f[3]);
        }
    }

    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn machine() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// From process start to the first page, and to the first sign-in after it.
fn first_response(cache: &std::path::Path) -> Result<(Duration, Duration)> {
    let started = Instant::now();
    let app = Up::local()
        .arg("--cache-dir")
        .arg(cache.to_string_lossy())
        .start()?;
    let r = app.get("/");
    if r.status != 200 {
        bail!("GET / answered {}", r.status);
    }
    let page = started.elapsed();
    app.sign_in("staff", CASEY.0, CASEY.1);
    Ok((page, started.elapsed()))
}

fn sign_in_section() -> Result<()> {
    const CALLS: usize = 40;
    println!("\n## Sign-in through the `login` component\n");
    println!(
        "{CALLS} sequential calls each; CPU is the server process's user + system time per call.\n"
    );
    println!("| case | p50 (ms) | p99 (ms) | CPU per call (ms) |\n|---|---:|---:|---:|");
    let app = Up::caseport().variable("demo_data", "true").start()?;
    let _ = app.get("/api/auth/me");
    let cases = [
        (
            "right password",
            "casey.manager@example.org",
            "caseport-demo-manager",
        ),
        (
            "wrong password",
            "robin.support@example.org",
            "not the password",
        ),
        (
            "unknown username",
            "nobody-{i}@example.org",
            "not the password",
        ),
    ];
    for (label, user, password) in cases {
        latency_row(label, app.pid(), CALLS, |i| {
            if i % 4 == 0 && label != "right password" {
                // Stay under the lockout: a right sign-in clears the account's failures.
                let _ = app.post(
                    "/api/auth/login",
                    &serde_json::json!({ "realm": "staff", "username": "robin.support@example.org", "password": "caseport-demo-support" }),
                );
            }
            // Each unknown username is new, so its attempts never add up to a lockout.
            let user = user.replace("{i}", &i.to_string());
            let started = Instant::now();
            let r = app.post(
                "/api/auth/login",
                &serde_json::json!({ "realm": "staff", "username": user, "password": password }),
            );
            if r.status == 429 {
                bail!("{label}: locked out during the benchmark");
            }
            Ok(started.elapsed())
        })?;
    }
    Ok(())
}

fn argon2_section() -> Result<()> {
    const ROUNDS: usize = 6;
    println!("\n## argon2id (19 MiB, t=2, p=1): wasm against native\n");
    println!(
        "The same `caseport_shared::passwords::hash`, natively and in the probe (built as the components that hash are). \
         {ROUNDS} rounds, each five native hashes then five in one wasm instance (its first, a fresh \
         instance's, left out): the ratio is each round's medians, so that a machine that slows \
         down meanwhile slows both sides of it.\n"
    );
    let hash = || -> Result<f64> {
        let started = Instant::now();
        caseport_shared::passwords::hash("a benchmark passphrase of some length")
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    };
    hash()?;
    let app = Up::probe().start()?;
    let (mut native, mut wasm, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let n = (0..5).map(|_| hash()).collect::<Result<Vec<_>>>()?;
        let r = app.get("/probe/argon2");
        if r.status != 200 {
            bail!("probe argon2: {} {}", r.status, r.body);
        }
        let w: Vec<f64> = r
            .body
            .split(',')
            .skip(1)
            .filter_map(|us| us.parse::<f64>().ok())
            .map(|us| us / 1000.0)
            .collect();
        ratios.push(median(&w) / median(&n));
        native.extend(n);
        wasm.extend(w);
    }
    let range = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        format!("{lo:.2}–{hi:.2}")
    };
    println!(
        "| build | median hash (ms) | range (ms) |\n|---|---:|---:|\n\
         | native (x86_64, release) | {:.1} | {} |\n\
         | wasm32-wasip2 under wasmtime | {:.1} | {} |\n\
         | ratio wasm / native, median of the rounds' | {:.2} | {} |",
        median(&native),
        range(&native),
        median(&wasm),
        range(&wasm),
        median(&ratios),
        range(&ratios),
    );
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
];
const FIRST: &[&str] = &[
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Oliver", "Sophia", "Elijah", "Isabella", "James",
    "Mia", "William", "Amelia", "Benjamin", "Harper", "Lucas", "Evelyn", "Henry", "Abigail",
    "Jack",
];

/// The statements that fill a demo database with `clients` clients and 1,000 more staff:
/// every client is on one staff member's caseload, and Casey gets every thousandth. Rows go
/// in 500 to a statement, so that a libSQL server takes them in few round trips.
fn fill_statements(clients: usize) -> Vec<String> {
    const ROWS: usize = 500;
    let mut out = Vec::new();
    let staff: Vec<String> = (0..1000)
        .map(|s| {
            format!(
                "({}, 1, 'staff{s}@example.org', 'Staff {s}', 'case_manager', '2026-01-01T00:00:00Z')",
                FILL_FIRST_STAFF + s
            )
        })
        .collect();
    for chunk in staff.chunks(ROWS) {
        out.push(format!(
            "INSERT INTO staff (id, clinic_id, email, display_name, role, created_at) VALUES {}",
            chunk.join(", ")
        ));
    }
    let ids: Vec<usize> = (0..clients).collect();
    for chunk in ids.chunks(ROWS) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|&i| {
                let last = format!("{}{}", LAST[i % LAST.len()], i / 400);
                let first = FIRST[(i / LAST.len()) % FIRST.len()];
                let dob = format!("{}-{:02}-{:02}", 1950 + i % 70, 1 + i % 12, 1 + i % 28);
                let keys = caseport_shared::names::Keys::of(first, "", &last);
                format!(
                    "({}, '{first}', '{last}', '{}', '{}', '{}', '{dob}', 'client{i}@example.com', '2026-01-01T00:00:00Z')",
                    FILL_FIRST_ID + i,
                    keys.last,
                    keys.first,
                    keys.words
                )
            })
            .collect();
        out.push(format!(
            "INSERT INTO clients (id, first_name, last_name, last_key, first_key, name_words, dob, email, created_at) VALUES {}",
            rows.join(", ")
        ));
        // Casey is the demo's first staff member; the 1,000 above start at FILL_FIRST_STAFF.
        let assignments: Vec<String> = chunk
            .iter()
            .map(|&i| {
                let staff = if i % 1000 == 0 {
                    1
                } else {
                    FILL_FIRST_STAFF + i % 1000
                };
                format!(
                    "({staff}, {}, 'primary_case_manager', '2025-06-01')",
                    FILL_FIRST_ID + i
                )
            })
            .collect();
        out.push(format!(
            "INSERT OR IGNORE INTO caseload_assignments (staff_id, client_id, role, date_assigned) VALUES {}",
            assignments.join(", ")
        ));
    }
    out
}

/// The first id of the clients [`fill_statements`] adds (the demo's are below it).
const FILL_FIRST_ID: usize = 1000;
/// The first id of the staff it adds, all in the demo's first clinic.
const FILL_FIRST_STAFF: usize = 10_000;

/// Fills a local demo database (see [`fill_statements`]) in one transaction.
fn fill(db: &caseport_shared::native::NativeDb, clients: usize) -> Result<()> {
    use caseport_shared::ports::Db;
    let e = |e: caseport_shared::ports::StorageError| anyhow::anyhow!("{e}");
    db.execute("BEGIN", &[]).map_err(e)?;
    for sql in fill_statements(clients) {
        db.execute(&sql, &[]).map_err(e)?;
    }
    db.execute("COMMIT", &[]).map_err(e)?;
    Ok(())
}

/// The median of 15 `GET path` calls with `headers` (in ms), and the `total` the answer gave.
fn median_ms(
    app: &caseport_tests::Server,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(f64, i64)> {
    let mut times = Vec::new();
    let mut total = 0;
    for _ in 0..15 {
        let started = Instant::now();
        let r = app.call("GET", path, None, headers);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if r.status != 200 {
            bail!("{path}: {} {}", r.status, r.body);
        }
        total = r.json()["total"].as_i64().unwrap_or(0);
    }
    Ok((median(&times), total))
}

fn scale_section() -> Result<()> {
    println!("\n## My Caseload at scale\n");
    println!(
        "Median of 15 calls through `caseport up` (HTTP, component, SQLite); 1,000 extra staff; Casey has every thousandth client, an administrator sees all.\n"
    );
    println!(
        "| clients | mine: first page | mine: search | mine: last page | all: first page | all: search \"Smith1\" | all: page at 50% | all: page at 50%, by cursor | all: last page | all: sorted by date assigned |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut plans_db = None;
    for n in [1_000usize, 10_000, 100_000] {
        let state = tempfile::tempdir()?;
        {
            let app = Up::caseport()
                .variable("demo_data", "true")
                .state_dir(state.path())
                .start()?;
            let _ = app.get("/api/auth/me");
        }
        let db = caseport_shared::native::NativeDb::open(&state.path().join("sqlite_db.db"))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        fill(&db, n)?;
        let app = Up::caseport().state_dir(state.path()).start()?;
        let casey = app.sign_in(
            "staff",
            "casey.manager@example.org",
            "caseport-demo-manager",
        );
        let admin = app.sign_in("staff", "admin@example.org", "caseport-demo-admin");
        let (mine_first, mine_total) = median_ms(&app, "/api/caseload", &[("cookie", &casey)])?;
        let (mine_search, _) = median_ms(&app, "/api/caseload?q=Smith", &[("cookie", &casey)])?;
        let (mine_last, _) = median_ms(
            &app,
            &format!("/api/caseload?offset={}", (mine_total - 25).max(0)),
            &[("cookie", &casey)],
        )?;
        let (all_first, all_total) =
            median_ms(&app, "/api/caseload?scope=all", &[("cookie", &admin)])?;
        let (all_search, _) = median_ms(
            &app,
            "/api/caseload?scope=all&q=Smith1",
            &[("cookie", &admin)],
        )?;
        let (all_mid, _) = median_ms(
            &app,
            &format!("/api/caseload?scope=all&offset={}", all_total / 2),
            &[("cookie", &admin)],
        )?;
        let before_mid = app.call(
            "GET",
            &format!("/api/caseload?scope=all&offset={}", all_total / 2 - 25),
            None,
            &[("cookie", &admin)],
        );
        let cursor = before_mid.json()["next"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (all_mid_cursor, _) = median_ms(
            &app,
            &format!(
                "/api/caseload?scope=all&offset={}&after={cursor}",
                all_total / 2
            ),
            &[("cookie", &admin)],
        )?;
        let (all_by_date, _) = median_ms(
            &app,
            "/api/caseload?scope=all&sort=date_assigned",
            &[("cookie", &admin)],
        )?;
        let (all_last, _) = median_ms(
            &app,
            &format!("/api/caseload?scope=all&offset={}", all_total - 25),
            &[("cookie", &admin)],
        )?;
        println!(
            "| {n} | {mine_first:.2} | {mine_search:.2} | {mine_last:.2} | {all_first:.2} | {all_search:.2} | {all_mid:.2} | {all_mid_cursor:.2} | {all_last:.2} | {all_by_date:.2} |"
        );
        if n == 100_000 {
            plans_db = Some((state, db));
        }
    }
    if let Some((_state, db)) = plans_db {
        println!("\n### Query plans at 100,000 clients\n");
        let recording = caseport_shared::native::PlanRecorder::new(&db);
        let kv =
            caseport_shared::native::NativeKv::in_memory().map_err(|e| anyhow::anyhow!("{e}"))?;
        let settings = caseport_shared::settings::Settings::default();
        let clock = caseport_shared::ports::SystemClock;
        let scoped =
            caseport_shared::clinics::Scoped::new(&recording, caseport_shared::clinics::FIRST);
        let ctx = caseport_shared::ctx::Ctx {
            db: &scoped,
            kv: &kv,
            clock: &clock,
            settings: &settings,
        };
        let today = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date();
        use caseport_shared::domain::{Account, AccountKind, Role};
        let admin = Account {
            kind: AccountKind::Staff,
            id: 3,
        };
        let middle = caseport_shared::caseload::Query::parse("scope=all&offset=50000")
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let cursor = caseport_shared::caseload::list(&ctx, admin, Role::Admin, &middle, today)
            .map_err(|e| anyhow::anyhow!("{}", e.message))?
            .next
            .unwrap_or_default();
        let by_cursor = format!("scope=all&after={cursor}");
        for (label, who, role, query) in [
            ("mine, first page", 1, Role::CaseManager, ""),
            ("all, first page", 3, Role::Admin, "scope=all"),
            ("all, search", 3, Role::Admin, "scope=all&q=Smith1"),
            ("all, sorted by age", 3, Role::Admin, "scope=all&sort=age"),
            (
                "all, the page after row 50,025, by cursor",
                3,
                Role::Admin,
                by_cursor.as_str(),
            ),
        ] {
            recording.forget();
            let q = caseport_shared::caseload::Query::parse(query)
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            caseport_shared::caseload::list(
                &ctx,
                Account {
                    kind: AccountKind::Staff,
                    id: who,
                },
                role,
                &q,
                today,
            )
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            println!("{label} (`{query}`):\n```");
            for line in recording
                .take_plans(|_| true)
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                println!("{line}");
            }
            println!("```");
        }
    }
    Ok(())
}

/// Makes `calls` calls (`call(i)` answers how long the `i`th took) to the server `pid` and
/// prints the table row: p50, p99, and the server's CPU time per call.
fn latency_row(
    label: &str,
    pid: u32,
    calls: usize,
    call: impl FnMut(usize) -> Result<Duration>,
) -> Result<()> {
    let cpu_before = cpu_seconds(pid)?;
    let times = (0..calls).map(call).collect::<Result<Vec<_>>>()?;
    let cpu = (cpu_seconds(pid)? - cpu_before) / calls as f64;
    let (p50, p99) = percentiles(times);
    println!("| {label} | {p50:.1} | {p99:.1} | {:.1} |", cpu * 1000.0);
    Ok(())
}

/// The p50 and p99 of `times`, in ms.
fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    (
        ms(times[times.len() / 2]),
        ms(times[(times.len() * 99 / 100).min(times.len() - 1)]),
    )
}

/// One timed call; answers its duration after checking the status.
fn timed(
    what: &str,
    expect: u16,
    call: impl FnOnce() -> caseport_tests::Reply,
) -> Result<Duration> {
    let started = Instant::now();
    let r = call();
    let took = started.elapsed();
    if r.status != expect {
        bail!("{what}: {} {}", r.status, r.body);
    }
    Ok(took)
}

fn reset_section() -> Result<()> {
    use caseport_tests::Staff;
    use caseport_tests::demo::ADMIN;
    use caseport_tests::fake_mail::{FakeMail, Kind};
    const CALLS: usize = 30;
    println!("\n## Reset and Send New through the `reset-and-send` component\n");
    println!(
        "{CALLS} sequential calls each, each to a different client (a client just sent a password is not sent another for two minutes); CPU is the server process's user + system time per call, including the dev-mailbox component when it is the provider.\n"
    );
    println!("| case | p50 (ms) | p99 (ms) | CPU per call (ms) |\n|---|---:|---:|---:|");
    let fake = FakeMail::start(Kind::Postmark, "bench-token")?;
    let local = Up::local().start()?;
    let hosted = Up::caseport()
        .variable("demo_data", "true")
        .variable("mail_provider", "postmark")
        .variable("mail_api_url", &fake.url())
        .variable("mail_api_token", "bench-token")
        .start()?;
    for (label, app, delivery) in [
        (
            "Client Information view (baseline: session, SQLite, audit)",
            &local,
            "view",
        ),
        ("reset, shown once (display)", &local, "display"),
        (
            "reset and send, local mailbox (service chaining)",
            &local,
            "email",
        ),
        (
            "reset and send, Postmark format over TCP to 127.0.0.1",
            &hosted,
            "email",
        ),
    ] {
        let _ = app.get("/api/auth/me");
        let casey = Staff::sign_in(app, CASEY);
        let admin = Staff::sign_in(app, ADMIN);
        let mut ids = Vec::with_capacity(CALLS);
        for i in 0..CALLS {
            let r = casey.send(
                "POST",
                "/api/clients",
                &serde_json::json!({ "first_name": format!("Bench{i}"), "last_name": delivery, "dob": "2010-01-01", "email": format!("bench{i}.{delivery}@example.com") }),
            );
            ids.push(r.json()["client"]["id"].as_i64().context("client id")?);
        }
        latency_row(label, app.pid(), CALLS, |i| {
            let id = ids[i];
            let key = format!("bench-{delivery}-{i:04}");
            match delivery {
                "view" => timed(label, 200, || casey.get(&format!("/api/clients/{id}"))),
                "display" => timed(label, 200, || {
                    admin.send(
                        "POST",
                        &format!("/api/clients/{id}/portal-password/reset"),
                        &serde_json::json!({ "delivery": "display", "idempotency_key": key }),
                    )
                }),
                _ => timed(label, 200, || {
                    casey.send(
                        "POST",
                        &format!("/api/clients/{id}/portal-password/reset"),
                        &serde_json::json!({ "delivery": "email", "idempotency_key": key }),
                    )
                }),
            }
        })?;
    }
    Ok(())
}

/// `cargo xtask fuzz [EXAMPLES]`: the long Schemathesis run, as each role, with a table of
/// requests and failures for docs/BENCHMARKS.md (EXAMPLES per operation, default 120).
fn fuzz_section() -> Result<()> {
    let examples: u32 = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(120);
    caseport_binary();
    let app = caseport_tests::demo_app();
    let started = Instant::now();
    let runs = caseport_tests::fuzz::fuzz(&app, examples)?;
    println!("## Fuzzing the API (Schemathesis, {examples} cases per operation)\n");
    println!("| role | requests | failures |\n|---|---:|---:|");
    let (mut requests, mut failures) = (0, 0);
    for run in &runs {
        println!("| {} | {} | {} |", run.role, run.generated, run.failures);
        requests += run.generated;
        failures += run.failures;
        if run.failures > 0 {
            eprintln!("{}", run.output);
        }
    }
    println!("| **all** | **{requests}** | **{failures}** |");
    let verdict =
        caseport_shared::audit::verify_all(&app.db()).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "\n{:.0} s; audit chain after the run: {verdict:?}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The peak resident memory of a process, in MiB (`VmHWM`).
fn peak_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM")?;
    Ok(kib / 1024.0)
}

/// `cargo xtask flood`: 200 clients send wrong sign-ins as fast as they can for 10 s (each
/// one argon2id, 19 MiB), while Casey signs in from her own network once a second. Figures:
/// answers by status, the server's peak memory, and how long Casey waited.
fn flood_section() -> Result<()> {
    const FLOODERS: usize = 200;
    const SECONDS: u64 = 10;
    caseport_binary();
    // Behind a proxy Caseport trusts (this computer), each flooder is its own client network.
    let app = Up::local()
        .variable("trusted_proxies", "127.0.0.1")
        .start()?;
    let _ = app.get("/api/auth/me");
    let url = app.url("/api/auth/login");
    let stop = Instant::now() + Duration::from_secs(SECONDS);
    let counts = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        u16,
        usize,
    >::new()));
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|i| {
            let url = url.clone();
            let counts = counts.clone();
            thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(30)))
                    .build()
                    .into();
                let mut n = 0;
                while Instant::now() < stop {
                    let body = format!(
                        r#"{{"realm":"staff","username":"flood{i}-{n}@example.org","password":"not a real password"}}"#
                    );
                    let status = agent
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("x-forwarded-for", format!("198.51.{}.{}", i / 250, i % 250))
                        .send(body.as_bytes())
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    if let Ok(mut c) = counts.lock() {
                        *c.entry(status).or_default() += 1;
                    }
                    n += 1;
                }
            })
        })
        .collect();
    let mut waits = Vec::new();
    let mut casey_ok = 0;
    while Instant::now() < stop {
        let started = Instant::now();
        let r = caseport_tests::post_json_with(
            &app,
            "/api/auth/login",
            &serde_json::json!({ "realm": "staff", "username": "casey.manager@example.org", "password": "caseport-demo-manager" }),
            &[("x-forwarded-for", "203.0.113.5")],
        );
        waits.push(started.elapsed());
        if r.status == 200 {
            casey_ok += 1;
        }
        thread::sleep(Duration::from_secs(1));
    }
    for f in flooders {
        let _ = f.join();
    }
    let peak = peak_mib(app.pid())?;
    waits.sort();
    println!("## A flood of sign-ins\n");
    println!(
        "{FLOODERS} clients, each from its own network behind a trusted proxy, sent wrong sign-ins for {SECONDS} s while Casey signed in once a second; `caseport up` with its defaults (`--max-concurrent 16`, `--queue-timeout 2`).\n"
    );
    println!("| answer | requests |\n|---|---:|");
    for (status, n) in counts.lock().map(|c| c.clone()).unwrap_or_default() {
        let what = match status {
            401 => "401 checked, wrong".to_string(),
            429 => "429 throttled".to_string(),
            503 => "503 busy (waited 2 s for room)".to_string(),
            0 => "no answer (cut off when the run ended)".to_string(),
            other => other.to_string(),
        };
        println!("| {what} | {n} |");
    }
    println!(
        "\nCasey: {casey_ok} of {} sign-ins succeeded; waited p50 {:.0} ms, max {:.0} ms. Peak server memory (VmHWM): {peak:.0} MiB.",
        waits.len(),
        ms(waits[waits.len() / 2]),
        ms(waits[waits.len() - 1])
    );
    Ok(())
}
