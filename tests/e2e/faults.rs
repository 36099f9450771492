//! Faults: the server killed (SIGKILL) in the middle of writes and started again on the same
//! state, and a full disk. Nothing may be half-written, the audit chain must verify, and a
//! password that was emailed either works or the case manager is told it may not have arrived.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use caseport_shared::native::NativeDb;
use caseport_shared::ports::Db;
use caseport_tests::demo::{ADMIN, CASEY, ROBIN};
use caseport_tests::fake_mail::{FakeMail, Kind};
use caseport_tests::{Server, Staff, Up, checks};
use serde_json::json;

const TOKEN: &str = "provider-token-for-faults";
const HOOK_SECRET: &str = "webhook-secret-for-the-fault-tests";

fn with_provider(fake: &FakeMail, state: &Path) -> Up {
    Up::local()
        .variable("mail_provider", "postmark")
        .variable("mail_api_url", &fake.url())
        .variable("mail_api_token", TOKEN)
        .variable("mail_webhook_secret", HOOK_SECRET)
        .state_dir(state)
}

fn one(db: &NativeDb, sql: &str) -> i64 {
    db.execute(sql, &[])
        .unwrap()
        .first()
        .and_then(|r| r.int(0))
        .unwrap_or_else(|| panic!("{sql}"))
}

/// The checks every fault must pass, on the state the server left.
fn assert_whole(state: &Path) {
    checks::assert_whole(&NativeDb::open(&state.join("sqlite_db.db")).unwrap());
}

#[test]
fn killed_while_waiting_for_the_provider_the_emailed_password_still_works() {
    let state = tempfile::tempdir().unwrap();
    let fake = FakeMail::start(Kind::Postmark, TOKEN).unwrap();
    let app = Arc::new(with_provider(&fake, state.path()).start().unwrap());
    let casey = Staff::sign_in(&app, CASEY);
    let jane = app.client_id("Jane");
    let fixed = casey.correct_email(jane, "jdoe123@hotmail.com");
    assert_eq!(fixed.status, 200, "{}", fixed.body);
    // The provider takes the email and holds its answer; the server dies meanwhile.
    fake.kill_server_mid_send(&app, jane, &casey.cookie, "killed-mid-send-1");
    drop(casey);
    drop(app);

    let app = with_provider(&fake, state.path()).start().unwrap();
    // The client has the email: its password works.
    let first = app.post(
        "/api/auth/login",
        &json!({ "realm": "portal", "username": "jdoe123@hotmail.com", "password": fake.password(0) }),
    );
    assert_eq!(
        first.json()["status"],
        "password_change_required",
        "{}",
        first.body
    );
    let casey = Staff::sign_in(&app, CASEY);
    let last = casey.get(&format!("/api/clients/{jane}")).json()["portal"]["last_reset"].clone();
    assert_eq!(last["mail_status"], "delivered", "{last}");
    app.kill();
    assert_whole(state.path());
}

/// A burst of every kind of write, in parallel, until the server is killed.
fn burst(
    app: &Arc<Server>,
    fake: &FakeMail,
    stop: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<()>> {
    let mut workers = Vec::new();
    let spawn = |f: Box<dyn Fn(usize) + Send>| {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                // A request cut off by the kill fails on the client side: that is the point.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i)));
                i += 1;
            }
        })
    };
    // Sign-ins, right and wrong.
    let a = app.clone();
    workers.push(spawn(Box::new(move |i| {
        let password = if i % 2 == 0 { ROBIN.1 } else { "wrong guess" };
        a.post(
            "/api/auth/login",
            &json!({ "realm": "staff", "username": ROBIN.0, "password": password }),
        );
    })));
    // Clients added.
    let a = app.clone();
    let casey = Staff::sign_in(app, CASEY).cookie;
    workers.push(spawn(Box::new(move |i| {
        a.call(
            "POST",
            "/api/clients",
            Some(&json!({ "first_name": format!("Burst{i}"), "last_name": "Client", "dob": "2012-03-04", "email": format!("burst{i}@example.net") })),
            &[("cookie", &casey)],
        );
    })));
    // Password changes of the administrator, between two passwords.
    let a = app.clone();
    workers.push(spawn(Box::new(move |_| {
        for (from, to) in [
            (ADMIN.1, "second admin passphrase here"),
            ("second admin passphrase here", ADMIN.1),
        ] {
            let signed = a.post(
                "/api/auth/login",
                &json!({ "realm": "staff", "username": ADMIN.0, "password": from }),
            );
            if let Some(cookie) = signed.session_cookie() {
                a.call(
                    "POST",
                    "/api/auth/change-password",
                    Some(&json!({ "current_password": from, "new_password": to })),
                    &[("cookie", &cookie)],
                );
            }
        }
    })));
    // Resets: emailed to the added clients, and shown once.
    let a = app.clone();
    let casey = Staff::sign_in(app, CASEY).cookie;
    workers.push(spawn(Box::new(move |i| {
        let ids: Vec<i64> = {
            let db = a.db();
            db.execute("SELECT id FROM clients ORDER BY id DESC LIMIT 20", &[])
                .map(|r| r.iter().filter_map(|r| r.int(0)).collect())
                .unwrap_or_default()
        };
        let Some(id) = ids.get(i % ids.len().max(1)) else {
            return;
        };
        let delivery = if i % 3 == 0 { "display" } else { "email" };
        a.call(
            "POST",
            &format!("/api/clients/{id}/portal-password/reset"),
            Some(&json!({ "delivery": delivery, "idempotency_key": format!("burst-key-{i:08}") })),
            &[("cookie", &casey)],
        );
    })));
    // Delivery webhooks for what the provider accepted.
    let a = app.clone();
    let f = fake.clone();
    workers.push(spawn(Box::new(move |i| {
        let ids = f.accepted_ids();
        let Some(id) = ids.get(i % ids.len().max(1)) else {
            thread::sleep(Duration::from_millis(5));
            return;
        };
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("caseport:{HOOK_SECRET}"))
        );
        a.call(
            "POST",
            "/api/mail/events/postmark",
            Some(&json!({ "RecordType": "Delivery", "MessageID": id, "Recipient": "x@example.net", "DeliveredAt": format!("2026-11-28T10:00:{:02}Z", i % 60), "Details": "250 OK" })),
            &[("authorization", &auth)],
        );
    })));
    workers
}

#[test]
fn killed_in_a_burst_of_writes_nothing_is_half_written() {
    for run_for in [
        Duration::from_millis(300),
        Duration::from_millis(900),
        Duration::from_millis(1600),
    ] {
        let state = tempfile::tempdir().unwrap();
        let fake = FakeMail::start(Kind::Postmark, TOKEN).unwrap();
        let app = Arc::new(with_provider(&fake, state.path()).start().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let workers = burst(&app, &fake, &stop);
        thread::sleep(run_for);
        app.kill();
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            let _ = w.join();
        }
        drop(app);
        assert_whole(state.path());
        let db = NativeDb::open(&state.path().join("sqlite_db.db")).unwrap();
        eprintln!(
            "killed after {run_for:?}: {} clients added, {} resets, {} emails handed over, {} audit entries; whole",
            one(
                &db,
                "SELECT count(*) FROM clients WHERE first_name LIKE 'Burst%'"
            ),
            one(&db, "SELECT count(*) FROM portal_resets"),
            fake.received().len(),
            one(&db, "SELECT count(*) FROM audit_log"),
        );

        // Started again on the same state, it serves, and the administrator's password is
        // one of the two, whole.
        let app = with_provider(&fake, state.path()).start().unwrap();
        let works = |password: &str| {
            app.post(
                "/api/auth/login",
                &json!({ "realm": "staff", "username": ADMIN.0, "password": password }),
            )
            .status
                == 200
        };
        assert!(
            works(ADMIN.1) || works("second admin passphrase here"),
            "after {run_for:?}: the administrator cannot sign in with either password"
        );
        // Every password the provider was given for a client works, or Client Information
        // says the send may not have arrived (or a later reset replaced it).
        let casey = Staff::sign_in(&app, CASEY);
        let db = app.db();
        for n in 0..fake.received().len() {
            let to = fake.to(n);
            let later = (n + 1..fake.received().len()).any(|m| fake.to(m) == to);
            if later {
                continue;
            }
            let Some(id) = db
                .execute(
                    "SELECT id FROM clients WHERE email = ?",
                    &[to.as_str().into()],
                )
                .unwrap()
                .first()
                .and_then(|r| r.int(0))
            else {
                continue;
            };
            let signed = app.post(
                "/api/auth/login",
                &json!({ "realm": "portal", "username": to, "password": fake.password(n) }),
            );
            if signed.json()["status"] == "password_change_required" {
                continue;
            }
            let last =
                casey.get(&format!("/api/clients/{id}")).json()["portal"]["last_reset"].clone();
            let told = last["mail_status"] == "sending"
                || last["mail_status"] == "failed"
                || last["delivery"] != "email";
            assert!(
                told,
                "after {run_for:?}: {to}'s emailed password fails and {last}"
            );
        }
        app.kill();
        assert_whole(state.path());
    }
}

/// A small tmpfs, mounted for one test (as root) and unmounted after.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        Self { dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_disk_answers_a_clear_503_and_keeps_what_was_saved() {
    let disk = SmallDisk::mount("1m");
    let app = Up::local().state_dir(disk.dir.path()).start().unwrap();
    let casey = Staff::sign_in(&app, CASEY);
    let name = "Padded".repeat(16);
    let mut added = 0;
    let full = loop {
        let r = casey.send(
            "POST",
            "/api/clients",
            &json!({ "first_name": name, "last_name": format!("Client{added}"), "dob": "2010-01-01" }),
        );
        match r.status {
            201 => added += 1,
            _ => break r,
        }
        assert!(added < 100_000, "the disk never filled");
    };
    assert_eq!(full.status, 503, "{}", full.body);
    assert_eq!(full.json()["error"]["code"], "storage_full");
    assert!(full.header("retry-after").is_some());
    assert!(
        app.wait_for_output("storage: "),
        "the log says why: {}",
        app.output.text()
    );
    app.kill();
    assert_whole(disk.dir.path());
    let db = NativeDb::open(&disk.dir.path().join("sqlite_db.db")).unwrap();
    assert_eq!(
        one(
            &db,
            "SELECT count(*) FROM clients WHERE last_name LIKE 'Client%'"
        ),
        added,
        "every client answered 201 was kept, and no other"
    );
}
