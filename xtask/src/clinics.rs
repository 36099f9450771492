//! `cargo xtask bench-clinics`: what several clinics and metering cost — sign-in, My Caseload
//! and Reset and Send New with and without the usage write, the bytes a usage event takes, and
//! My Caseload with 100,000 clients spread over 100 clinics.

use anyhow::{Context, Result, anyhow, bail};
use caseport_shared::native::NativeDb;
use caseport_shared::ports::{Db, StorageError};
use caseport_tests::Up;
use caseport_tests::demo::{ADMIN, CASEY};

use crate::{median_ms, percentiles, timed};

fn storage(e: StorageError) -> anyhow::Error {
    anyhow!("{e}")
}

pub fn section() -> Result<()> {
    metering_cost()?;
    bytes_per_event()?;
    caseload_over_clinics()
}

/// The same calls with the `usage_metered` trigger and without it, twice each, interleaved (the
/// machine's speed drifts between runs).
fn metering_cost() -> Result<()> {
    const CALLS: usize = 40;
    println!("\n## The usage write: with and without\n");
    println!(
        "`caseport up` with the demo data and the local mailbox; {CALLS} sequential calls per row and round; rounds interleaved (with, without, with, without). Without: the `usage_metered` trigger dropped, so no usage row is written.\n"
    );
    println!("| call | usage write | round | p50 (ms) | p99 (ms) |\n|---|---|---:|---:|---:|");
    let app = Up::local().start()?;
    let _ = app.get("/api/auth/me");
    let db = app.db();
    let trigger = db
        .execute(
            "SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND name = 'usage_metered'",
            &[],
        )
        .map_err(storage)?
        .first()
        .and_then(|r| r.text(0).map(str::to_string))
        .context("no usage_metered trigger")?;
    let casey = caseport_tests::Staff::sign_in(&app, CASEY);
    let mut next_client = 0;
    let mut installed = true;
    for (round, metered) in [(1, true), (1, false), (2, true), (2, false)] {
        if metered != installed {
            let sql = if metered {
                trigger.clone()
            } else {
                "DROP TRIGGER usage_metered".to_string()
            };
            db.execute(&sql, &[]).map_err(storage)?;
            installed = metered;
        }
        let label = if metered { "yes" } else { "no" };
        let sign_ins = (0..CALLS)
            .map(|_| {
                timed("sign-in", 200, || {
                    app.post(
                        "/api/auth/login",
                        &serde_json::json!({ "realm": "staff", "username": CASEY.0, "password": CASEY.1 }),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let caseloads = (0..CALLS)
            .map(|_| timed("My Caseload", 200, || casey.get("/api/caseload")))
            .collect::<Result<Vec<_>>>()?;
        let jane = app.client_id("Jane");
        let views = (0..CALLS)
            .map(|_| {
                timed("Client Information", 200, || {
                    casey.get(&format!("/api/clients/{jane}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut ids = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            next_client += 1;
            let r = casey.send(
                "POST",
                "/api/clients",
                &serde_json::json!({ "first_name": format!("Meter{next_client}"), "last_name": "Bench", "dob": "2010-01-01", "email": format!("meter{next_client}@example.com") }),
            );
            ids.push(r.json()["client"]["id"].as_i64().context("client id")?);
        }
        let resets = ids
            .iter()
            .map(|id| {
                timed("Reset and Send New", 200, || {
                    casey.send(
                        "POST",
                        &format!("/api/clients/{id}/portal-password/reset"),
                        &serde_json::json!({ "delivery": "email", "idempotency_key": format!("meter-{id}") }),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for (call, times) in [
            ("staff sign-in", sign_ins),
            ("My Caseload (not billed: no write either way)", caseloads),
            (
                "Client Information opened (billed: the cheapest billed call)",
                views,
            ),
            ("Reset and Send New, local mailbox", resets),
        ] {
            let (p50, p99) = percentiles(times);
            println!("| {call} | {label} | {round} | {p50:.1} | {p99:.1} |");
        }
    }
    Ok(())
}

/// The bytes 100,000 usage events add to a database file, with their indexes.
fn bytes_per_event() -> Result<()> {
    const EVENTS: i64 = 100_000;
    let dir = tempfile::tempdir()?;
    let db = NativeDb::open(&dir.path().join("usage.db")).map_err(storage)?;
    caseport_shared::schema::migrate(&db).map_err(storage)?;
    let size = |db: &NativeDb| -> Result<i64> {
        db.execute("VACUUM", &[]).map_err(storage)?;
        db.execute(
            "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            &[],
        )
        .map_err(storage)?
        .first()
        .and_then(|r| r.int(0))
        .context("no size")
    };
    let before = size(&db)?;
    db.execute("BEGIN", &[]).map_err(storage)?;
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(500) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| {
                let meter = ["sign_in", "client_view", "client_change", "password_reset"]
                    [(*i % 4) as usize];
                format!(
                    "({}, '{meter}', {}, '2026-11-{:02}T{:02}:{:02}:{:02}Z')",
                    1 + i % 100,
                    1_000_000 + i,
                    1 + i % 28,
                    i % 24,
                    i % 60,
                    (i / 60) % 60
                )
            })
            .collect();
        db.execute(
            &format!(
                "INSERT INTO usage_events (clinic_id, meter, audit_seq, at) VALUES {}",
                rows.join(", ")
            ),
            &[],
        )
        .map_err(storage)?;
    }
    db.execute("COMMIT", &[]).map_err(storage)?;
    let after = size(&db)?;
    println!("\n## Bytes per usage event\n");
    println!(
        "{EVENTS} usage rows (100 clinics, four meters) added to a migrated database, VACUUMed before and after: {} bytes, **{} bytes per event** with its three indexes (clinic and time, time, audit entry). The audit entry it accompanies is written anyway.",
        after - before,
        (after - before) / EVENTS
    );
    Ok(())
}

/// 100 clinics of 1,000 clients each (ten case managers with 100 each, and an administrator),
/// on `c<n>.localhost`, beside the demo's two.
fn caseload_over_clinics() -> Result<()> {
    const CLINICS: i64 = 100;
    const CLIENTS: i64 = 1000;
    let state = tempfile::tempdir()?;
    {
        let app = Up::caseport()
            .variable("demo_data", "true")
            .state_dir(state.path())
            .start()?;
        let _ = app.get("/api/auth/me");
    }
    let db = NativeDb::open(&state.path().join("sqlite_db.db")).map_err(storage)?;
    // Every account below has the demo administrator's password (its hash, copied).
    let phc = db
        .execute(
            "SELECT phc FROM credentials WHERE username = ? AND clinic_id = 1",
            &[ADMIN.0.into()],
        )
        .map_err(storage)?
        .first()
        .and_then(|r| r.text(0).map(str::to_string))
        .context("no admin")?;
    db.execute("BEGIN", &[]).map_err(storage)?;
    for k in 0..CLINICS {
        let clinic = 100 + k;
        let run = |sql: String| db.execute(&sql, &[]).map_err(storage);
        run(format!(
            "INSERT INTO clinics (id, name, created_at) VALUES ({clinic}, 'Bench {clinic}', 'now')"
        ))?;
        run(format!(
            "INSERT INTO clinic_hosts (host, clinic_id) VALUES ('c{clinic}.localhost', {clinic})"
        ))?;
        let staff_base = clinic * 100;
        let staff: Vec<String> = (0..11)
            .map(|s| {
                let role = if s == 0 { "admin" } else { "case_manager" };
                format!(
                    "({}, {clinic}, 's{s}@c{clinic}.example', 'Staff {s}', '{role}', 'now')",
                    staff_base + s
                )
            })
            .collect();
        run(format!(
            "INSERT INTO staff (id, clinic_id, email, display_name, role, created_at) VALUES {}",
            staff.join(", ")
        ))?;
        let credentials: Vec<String> = (0..11)
            .map(|s| {
                format!(
                    "({clinic}, 'staff', {}, 's{s}@c{clinic}.example', '{phc}', 'now')",
                    staff_base + s
                )
            })
            .collect();
        run(format!(
            "INSERT INTO credentials (clinic_id, owner_kind, owner_id, username, phc, changed_at) VALUES {}",
            credentials.join(", ")
        ))?;
        let client_base = clinic * 10_000;
        for chunk in (0..CLIENTS).collect::<Vec<_>>().chunks(500) {
            let clients: Vec<String> = chunk
                .iter()
                .map(|&i| {
                    let last = format!("{}{}", crate::LAST[i as usize % crate::LAST.len()], i / 40);
                    let first = crate::FIRST[(i as usize / crate::LAST.len()) % crate::FIRST.len()];
                    let keys = caseport_shared::names::Keys::of(first, "", &last);
                    format!(
                        "({}, {clinic}, '{first}', '{last}', '{}', '{}', '{}', '2001-02-03', 'now')",
                        client_base + i,
                        keys.last,
                        keys.first,
                        keys.words
                    )
                })
                .collect();
            run(format!(
                "INSERT INTO clients (id, clinic_id, first_name, last_name, last_key, first_key, name_words, dob, created_at) VALUES {}",
                clients.join(", ")
            ))?;
            let assignments: Vec<String> = chunk
                .iter()
                .map(|&i| {
                    format!(
                        "({clinic}, {}, {}, 'primary_case_manager', '2025-06-01')",
                        staff_base + 1 + i % 10,
                        client_base + i
                    )
                })
                .collect();
            run(format!(
                "INSERT INTO caseload_assignments (clinic_id, staff_id, client_id, role, date_assigned) VALUES {}",
                assignments.join(", ")
            ))?;
        }
    }
    db.execute("COMMIT", &[]).map_err(storage)?;
    let app = Up::caseport().state_dir(state.path()).start()?;
    println!("\n## My Caseload with 100,000 clients over 100 clinics\n");
    println!(
        "Median of 15 calls through `caseport up`; each clinic 1,000 clients, ten case managers with 100 each and an administrator, on its own host name; the two demo clinics beside them.\n"
    );
    println!(
        "| clinic | mine: first page | mine: search | all: first page | all: search | all: last page |\n|---|---:|---:|---:|---:|---:|"
    );
    for clinic in [100, 150, 199] {
        let host = format!("c{clinic}.localhost:{}", app.port());
        let sign_in = |email: String| -> Result<String> {
            let r = app.call(
                "POST",
                "/api/auth/login",
                Some(&serde_json::json!({ "realm": "staff", "username": email, "password": ADMIN.1 })),
                &[("host", &host)],
            );
            r.session_cookie()
                .with_context(|| format!("sign-in at {host}: {}", r.body))
        };
        let manager = sign_in(format!("s1@c{clinic}.example"))?;
        let admin = sign_in(format!("s0@c{clinic}.example"))?;
        let as_manager = [("host", host.as_str()), ("cookie", manager.as_str())];
        let as_admin = [("host", host.as_str()), ("cookie", admin.as_str())];
        let (mine_first, mine) = median_ms(&app, "/api/caseload", &as_manager)?;
        let (mine_search, _) = median_ms(&app, "/api/caseload?q=Smith", &as_manager)?;
        let (all_first, all) = median_ms(&app, "/api/caseload?scope=all", &as_admin)?;
        let (all_search, _) = median_ms(&app, "/api/caseload?scope=all&q=Smith1", &as_admin)?;
        let (all_last, _) = median_ms(
            &app,
            &format!("/api/caseload?scope=all&offset={}", all - 25),
            &as_admin,
        )?;
        if mine != 100 || all != CLIENTS {
            bail!(
                "clinic {clinic}: {mine} on the caseload and {all} in all, not 100 and {CLIENTS}"
            );
        }
        println!(
            "| {clinic} | {mine_first:.2} | {mine_search:.2} | {all_first:.2} | {all_search:.2} | {all_last:.2} |"
        );
    }
    Ok(())
}
