//! Beyond one machine: Caseport on Spin's runtime config, key-value on a real `redis-server`
//! and SQLite on a real libSQL server (sqld), as one replica and as two replicas sharing them.

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use caseport_tests::demo::{CASEY, ROBIN};
use caseport_tests::fake_mail::{Act, FakeMail, Kind};
use caseport_tests::services::{Redis, Sqld, shared_runtime_config};
use caseport_tests::{Reply, Server, Staff, Up, checks};
use serde_json::{Value, json};

const TOKEN: &str = "provider-token-for-replicas";

/// A Redis server, a libSQL server and a runtime config that puts Caseport's state on them.
struct Shared {
    redis: Redis,
    sqld: Sqld,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Shared {
    fn start() -> Self {
        let redis = Redis::start().unwrap();
        let sqld = Sqld::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = shared_runtime_config(dir.path(), &redis, &sqld).unwrap();
        Self {
            redis,
            sqld,
            config,
            _dir: dir,
        }
    }

    /// Caseport as the README runs it, with its state on the shared servers.
    fn up(&self) -> Up {
        Up::local().runtime_config(&self.config)
    }

    /// Caseport sending through `fake`, with its state on the shared servers.
    fn up_with(&self, fake: &FakeMail) -> Up {
        self.up()
            .variable("mail_provider", "postmark")
            .variable("mail_api_url", &fake.url())
            .variable("mail_api_token", TOKEN)
    }

    /// Two replicas, started one after the other (the first brings the schema and demo data
    /// in; the second finds them there).
    fn replicas(&self, up: impl Fn() -> Up) -> (Arc<Server>, Arc<Server>) {
        let a = up().start().unwrap();
        assert_eq!(a.get("/api/auth/me").status, 401);
        let b = up().start().unwrap();
        (Arc::new(a), Arc::new(b))
    }
}

fn code(r: &Reply) -> String {
    r.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn login(app: &Server, realm: &str, username: &str, password: &str) -> Reply {
    app.post(
        "/api/auth/login",
        &json!({ "realm": realm, "username": username, "password": password }),
    )
}

/// A client's id, found as a case manager finds it: in the caseload.
fn client_id(staff: &Staff, first_name: &str) -> i64 {
    let rows = staff.get("/api/caseload?limit=100").json()["rows"].clone();
    rows.as_array()
        .into_iter()
        .flatten()
        .find(|r| r["first_name"] == first_name)
        .and_then(|r| r["client_id"].as_i64())
        .unwrap_or_else(|| panic!("{first_name} is not in the caseload: {rows}"))
}

fn correct_email(staff: &Staff, id: i64, email: &str) {
    let r = staff.correct_email(id, email);
    assert_eq!(r.status, 200, "{}", r.body);
}

fn reset(staff: &Staff, id: i64, key: &str) -> Reply {
    staff.send(
        "POST",
        &format!("/api/clients/{id}/portal-password/reset"),
        &json!({ "delivery": "email", "idempotency_key": key }),
    )
}

fn last_reset(staff: &Staff, id: i64) -> Value {
    staff.get(&format!("/api/clients/{id}")).json()["portal"]["last_reset"].clone()
}

fn mailbox(app: &Server) -> Vec<Value> {
    app.get("/dev/mailbox/api/messages").json()["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Writes `text` as a runtime config and expects `caseport up` to refuse it with one line.
fn refused(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runtime-config.toml");
    std::fs::write(&path, text).unwrap();
    let (status, output) = Up::local()
        .runtime_config(&path)
        .fail("127.0.0.1:0")
        .unwrap();
    assert!(!status.success(), "{output}");
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, not:\n{output}");
    assert!(lines[0].contains("runtime-config.toml"), "{output}");
    lines[0].to_string()
}

#[test]
fn a_runtime_config_with_a_mistake_gets_one_line_and_no_start() {
    let line = refused("[key_value_store.default]\ntype = \"azure_cosmos\"\n");
    assert!(line.contains("key_value_store.default.type"), "{line}");
    assert!(line.contains("\"redis\""), "{line}");

    let line = refused(
        "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://127.0.0.1:1\"\ntoken = \"\"\npassword = \"x\"\n",
    );
    assert!(line.contains("password"), "{line}");

    let line = refused("[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://x\"\n");
    assert!(line.contains("token"), "{line}");

    let line = refused("[key_value_store.default]\ntype = \"redis\"\nurl = \"localhost:6379\"\n");
    assert!(line.contains("redis://"), "{line}");

    let line = refused("[key_value_store.default\ntype = \"redis\"\n");
    assert!(line.contains("runtime-config.toml"), "{line}");
}

#[test]
fn caseport_runs_on_redis_and_libsql_and_keeps_nothing_on_local_disk() {
    let shared = Shared::start();
    let app = shared.up().start().unwrap();
    let casey = Staff::sign_in(&app, CASEY);
    let jane = client_id(&casey, "Jane");
    correct_email(&casey, jane, "jdoe123@hotmail.com");
    let sent = reset(&casey, jane, "libsql-reset-0001");
    assert_eq!(sent.status, 200, "{}", sent.body);

    // The local mailbox keeps its messages in the key-value store, here on Redis.
    let mail = mailbox(&app);
    assert_eq!(mail.len(), 1, "{mail:?}");
    let text = mail[0]["text"].as_str().unwrap_or_default();
    let password = caseport_tests::fake_mail::temporary_password_in(text)
        .unwrap_or_else(|| panic!("no password in {text}"));
    let first = login(&app, "portal", "jdoe123@hotmail.com", &password);
    assert_eq!(first.json()["status"], "password_change_required");
    let changed = app.post(
        "/api/auth/change-password",
        &json!({ "change_token": first.json()["change_token"], "new_password": "harbor kettle winter song" }),
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(
        login(
            &app,
            "portal",
            "jdoe123@hotmail.com",
            "harbor kettle winter song"
        )
        .status,
        200
    );
    let history: Vec<String> = casey.get(&format!("/api/clients/{jane}/history")).json()["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str().map(str::to_string))
        .collect();
    for action in ["portal_password_reset_started", "portal_password_reset"] {
        assert!(history.contains(&action.to_string()), "{history:?}");
    }

    // Neither a database nor a key-value file was made on this machine.
    let local: Vec<_> = walk(&app.state);
    assert!(
        local.iter().all(|p| !p.to_string_lossy().ends_with(".db")),
        "{local:?}"
    );

    // The same state, a fresh process: the changed password and the data are still there.
    drop(app);
    let again = shared.up().start().unwrap();
    assert_eq!(
        login(
            &again,
            "portal",
            "jdoe123@hotmail.com",
            "harbor kettle winter song"
        )
        .status,
        200
    );
    drop(again);
    let mut sqld = shared.sqld;
    checks::assert_whole(&sqld.stop_and_open().unwrap());
    drop(shared.redis);
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn two_replicas_share_sessions_and_sign_out_ends_them_on_both() {
    let shared = Shared::start();
    let (a, b) = shared.replicas(|| shared.up());
    let cookie = a.sign_in("staff", CASEY.0, CASEY.1);
    let me = |app: &Server| {
        app.call("GET", "/api/auth/me", None, &[("cookie", &cookie)])
            .status
    };
    assert_eq!((me(&a), me(&b)), (200, 200));
    let caseload = b.call("GET", "/api/caseload", None, &[("cookie", &cookie)]);
    assert_eq!(caseload.status, 200, "{}", caseload.body);
    assert!(caseload.json()["total"].as_i64().unwrap_or(0) > 0);

    let out = b.call("POST", "/api/auth/logout", None, &[("cookie", &cookie)]);
    assert_eq!(out.status, 204);
    assert_eq!((me(&a), me(&b)), (401, 401));
}

#[test]
fn fifty_wrong_passwords_over_two_replicas_check_at_most_five() {
    let shared = Shared::start();
    let (a, b) = shared.replicas(|| shared.up());
    let start = Arc::new(Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let app = if i % 2 == 0 { a.clone() } else { b.clone() };
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                login(&app, "staff", ROBIN.0, "a parallel guess").status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, 50, "{statuses:?}");
    assert!((1..=5).contains(&checked), "{checked} guesses were checked");
    // The account is locked on both: even the right password is refused for now.
    for app in [&a, &b] {
        let r = login(app, "staff", ROBIN.0, ROBIN.1);
        assert_eq!((r.status, code(&r).as_str()), (429, "too_many_attempts"));
    }
}

#[test]
fn ten_parallel_resets_over_two_replicas_send_one_email() {
    let shared = Shared::start();
    let fake = FakeMail::start(Kind::Postmark, TOKEN).unwrap();
    let (a, b) = shared.replicas(|| shared.up_with(&fake));
    let on_a = Staff::sign_in(&a, CASEY);
    let on_b = Staff {
        app: &b,
        cookie: on_a.cookie.clone(),
    };
    let jane = client_id(&on_a, "Jane");
    correct_email(&on_a, jane, "jdoe123@hotmail.com");

    fake.then(Act::Slow(Duration::from_millis(800)));
    let start = Arc::new(Barrier::new(10));
    let replies: Vec<Reply> = thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let staff = if i % 2 == 0 { &on_a } else { &on_b };
                let start = start.clone();
                s.spawn(move || {
                    start.wait();
                    reset(staff, jane, &format!("replica-reset-{i:04}"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let sent = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(sent, 1, "{replies:?}");
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 409, "{}", r.body);
        assert!(
            ["reset_in_progress", "recently_reset"].contains(&code(r).as_str()),
            "{}",
            r.body
        );
    }
    assert_eq!(fake.received().len(), 1, "one email");
    // The emailed password is the one valid temporary password, on either replica.
    let first = login(&b, "portal", "jdoe123@hotmail.com", &fake.password(0));
    assert_eq!(
        first.json()["status"],
        "password_change_required",
        "{}",
        first.body
    );
    assert_eq!(last_reset(&on_a, jane)["mail_status"], "accepted");
}

#[test]
fn a_replica_killed_mid_reset_leaves_the_other_serving_and_the_state_whole() {
    let shared = Shared::start();
    let fake = FakeMail::start(Kind::Postmark, TOKEN).unwrap();
    let (a, b) = shared.replicas(|| shared.up_with(&fake));
    let on_a = Staff::sign_in(&a, CASEY);
    let jane = client_id(&on_a, "Jane");
    correct_email(&on_a, jane, "jdoe123@hotmail.com");

    // The provider takes the email and holds its answer; replica A dies meanwhile.
    fake.kill_server_mid_send(&a, jane, &on_a.cookie, "killed-replica-1");

    // B serves the same session, and tells the case manager the send is unresolved.
    let on_b = Staff {
        app: &b,
        cookie: on_a.cookie.clone(),
    };
    assert_eq!(on_b.get("/api/caseload").status, 200);
    assert_eq!(last_reset(&on_b, jane)["mail_status"], "sending");
    let again = reset(&on_b, jane, "killed-replica-2");
    assert_eq!(
        (again.status, code(&again).as_str()),
        (409, "reset_in_progress")
    );
    // The emailed password works, and then the case manager sees it arrived.
    let first = login(&b, "portal", "jdoe123@hotmail.com", &fake.password(0));
    assert_eq!(
        first.json()["status"],
        "password_change_required",
        "{}",
        first.body
    );
    assert_eq!(last_reset(&on_b, jane)["mail_status"], "delivered");

    drop(on_b);
    drop(on_a);
    drop(b);
    let mut sqld = shared.sqld;
    checks::assert_whole(&sqld.stop_and_open().unwrap());
}

#[test]
fn a_server_that_cannot_be_reached_gets_a_clear_503_and_nothing_changes() {
    let redis = Redis::start().unwrap();
    let sqld = Sqld::start().unwrap();
    let closed = caseport_tests::Upstream::closed_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str, kv: &str, db: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"{kv}\"\n\n[sqlite_database.default]\ntype = \"libsql\"\nurl = \"{db}\"\ntoken = \"\"\n"
            ),
        )
        .unwrap();
        path
    };
    let no_redis = config(
        "no-redis.toml",
        &format!("redis://127.0.0.1:{closed}"),
        &sqld.url(),
    );
    let no_libsql = config(
        "no-libsql.toml",
        &redis.url(),
        &format!("http://127.0.0.1:{closed}"),
    );
    for path in [no_redis, no_libsql] {
        let app = Up::local().runtime_config(&path).start().unwrap();
        let started = Instant::now();
        let r = login(&app, "staff", CASEY.0, CASEY.1);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            (r.status, code(&r).as_str()),
            (503, "storage_unavailable"),
            "{}: {}",
            path.display(),
            r.body
        );
        assert!(r.header("retry-after").is_some(), "{r:?}");
        assert!(r.session_cookie().is_none());
    }
    // The reachable servers were left as they were: sqld has no schema, Redis no keys.
    let app = Up::local()
        .runtime_config(&shared_runtime_config(dir.path(), &redis, &sqld).unwrap())
        .start()
        .unwrap();
    assert_eq!(login(&app, "staff", CASEY.0, CASEY.1).status, 200);
}

#[test]
fn parallel_first_requests_on_fresh_replicas_wait_for_each_other_without_an_error() {
    let shared = Shared::start();
    // No warm-up: the first requests race the schema, the demo data and each other's writes.
    let a = Arc::new(shared.up().start().unwrap());
    let b = Arc::new(shared.up().start().unwrap());
    let start = Arc::new(Barrier::new(12));
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let app = if i % 2 == 0 { a.clone() } else { b.clone() };
            let who = [CASEY, ROBIN, caseport_tests::demo::ADMIN][i % 3];
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                let r = login(&app, "staff", who.0, who.1);
                (r.status, r.body)
            })
        })
        .collect();
    for h in handles {
        let (status, body) = h.join().unwrap();
        assert_eq!(
            status,
            200,
            "{body}\n{}\n{}",
            a.output.text(),
            b.output.text()
        );
    }
    drop((a, b));
    let mut sqld = shared.sqld;
    checks::assert_whole(&sqld.stop_and_open().unwrap());
}
