//! Several clinics on one deployment: each request's clinic comes from its host name, and
//! nothing of one clinic is reachable from another (`shared/src/clinics.rs`).
//!
//! The demo data has two clinics with the same staff and clients, each its own copy: clinic 1
//! on the loopback names and `north.localhost`, clinic 2 on `south.localhost`.

use caseport_shared::ports::Db;
use caseport_tests::demo::{ADMIN, CASEY, OPERATOR, ROBIN};
use caseport_tests::{Reply, Server, demo_app};
use serde_json::{Value, json};

/// Requests to `app` addressed to `host` (a name the demo maps, or one it does not).
struct AtHost<'a> {
    app: &'a Server,
    host: String,
    cookie: Option<String>,
}

impl<'a> AtHost<'a> {
    fn new(app: &'a Server, name: &str) -> Self {
        Self {
            app,
            host: format!("{name}:{}", app.port()),
            cookie: None,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let mut headers = vec![("host", self.host.as_str())];
        if let Some(c) = &self.cookie {
            headers.push(("cookie", c.as_str()));
        }
        self.app.call(method, path, body, &headers)
    }

    fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None)
    }

    /// Signs `who` in to the staff console on this host.
    fn sign_in(mut self, who: (&str, &str)) -> Self {
        let r = self.call(
            "POST",
            "/api/auth/login",
            Some(&json!({ "realm": "staff", "username": who.0, "password": who.1 })),
        );
        assert_eq!(
            r.status, 200,
            "sign-in of {} on {}: {}",
            who.0, self.host, r.body
        );
        self.cookie = r.session_cookie();
        self
    }
}

/// The id of clinic `clinic`'s client with this first name.
fn client_of(app: &Server, clinic: i64, first_name: &str) -> i64 {
    app.db()
        .execute(
            "SELECT id FROM clients WHERE clinic_id = ? AND first_name = ?",
            &[clinic.into(), first_name.into()],
        )
        .unwrap()
        .first()
        .and_then(|r| r.int(0))
        .unwrap_or_else(|| panic!("clinic {clinic} has no {first_name}"))
}

fn ids(page: &Reply) -> Vec<i64> {
    page.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_i64().unwrap())
        .collect()
}

#[test]
fn a_session_of_one_clinic_reaches_nothing_of_the_other() {
    let app = demo_app();
    let north = AtHost::new(&app, "north.localhost").sign_in(CASEY);
    let north_jane = client_of(&app, 1, "Jane");
    let south_jane = client_of(&app, 2, "Jane");
    assert_ne!(north_jane, south_jane);

    // Her own caseload: her clinic's clients only.
    let mine = ids(&north.get("/api/caseload"));
    assert!(
        mine.contains(&north_jane) && !mine.contains(&south_jane),
        "{mine:?}"
    );
    let searched = ids(&north.get("/api/caseload?q=jane%20doe"));
    assert_eq!(searched, vec![north_jane]);

    // The other clinic's client does not exist for her, whatever she tries.
    let path = format!("/api/clients/{south_jane}");
    assert_eq!(north.get(&path).status, 404);
    assert_eq!(north.get(&format!("{path}/history")).status, 404);
    let patch = north.call(
        "PATCH",
        &path,
        Some(&json!({ "version": 1, "email": "x@example.org" })),
    );
    assert_eq!(patch.status, 404, "{}", patch.body);
    let reset = north.call(
        "POST",
        &format!("{path}/portal-password/reset"),
        Some(&json!({ "delivery": "display", "idempotency_key": "clinic-test-0001" })),
    );
    assert_eq!(reset.status, 404, "{}", reset.body);

    // Nor for the clinic's administrator: All Clients and the staff are the clinic's own.
    let admin = AtHost::new(&app, "north.localhost").sign_in(ADMIN);
    let all = admin.get("/api/caseload?scope=all&limit=100");
    assert_eq!(all.json()["total"], 7, "{}", all.body);
    assert!(!ids(&all).contains(&south_jane));
    // Searches too, whichever index they take: both clinics have a Jane Doe.
    for q in ["jane", "doe%2C%20ja", "jane%20doe", "d"] {
        for scope in ["all", "mine"] {
            let found = ids(&admin.get(&format!("/api/caseload?scope={scope}&q={q}")));
            assert!(!found.contains(&south_jane), "{scope} {q}: {found:?}");
        }
        let found = ids(&admin.get(&format!("/api/caseload?scope=all&q={q}")));
        assert!(found.contains(&north_jane), "{q}: {found:?}");
    }
    assert_eq!(admin.get(&path).status, 404);
    let staff = admin.get("/api/staff").json();
    assert_eq!(staff["staff"].as_array().map(Vec::len), Some(3), "{staff}");
    let assign = admin.call(
        "POST",
        &format!("{path}/assignments"),
        Some(&json!({ "staff_id": 1, "role": "support_primary_staff" })),
    );
    assert_eq!(assign.status, 404, "{}", assign.body);

    // Nothing changed in the other clinic.
    let south_rows = app
        .db()
        .execute(
            "SELECT email, version FROM clients WHERE id = ?",
            &[south_jane.into()],
        )
        .unwrap();
    let row = south_rows.first().unwrap();
    assert_eq!(
        (row.text(0), row.int(1)),
        (Some("jdoe123@hotmail1.cmo"), Some(1))
    );
    let audited = app
        .db()
        .execute(
            "SELECT count(*) FROM audit_log WHERE clinic_id = 2 AND action != 'demo_data_loaded'",
            &[],
        )
        .unwrap();
    assert_eq!(audited.first().and_then(|r| r.int(0)), Some(0));
}

#[test]
fn a_session_is_refused_on_another_clinics_host() {
    let app = demo_app();
    let north = AtHost::new(&app, "north.localhost").sign_in(CASEY);
    assert_eq!(north.get("/api/auth/me").status, 200);
    let forged = AtHost {
        cookie: north.cookie.clone(),
        ..AtHost::new(&app, "south.localhost")
    };
    assert_eq!(forged.get("/api/auth/me").status, 401);
    assert_eq!(forged.get("/api/caseload").status, 401);
    // The loopback address is the same clinic as north.localhost: the session works there.
    let loopback = AtHost {
        cookie: north.cookie.clone(),
        ..AtHost::new(&app, "127.0.0.1")
    };
    assert_eq!(loopback.get("/api/auth/me").status, 200);
}

#[test]
fn the_same_username_signs_in_to_each_clinic_as_a_different_person() {
    let app = demo_app();
    let north = AtHost::new(&app, "north.localhost").sign_in(CASEY);
    let south = AtHost::new(&app, "south.localhost").sign_in(CASEY);
    let me_north = north.get("/api/auth/me").json()["user"].clone();
    let me_south = south.get("/api/auth/me").json()["user"].clone();
    assert_eq!(
        me_north["display_name"], me_south["display_name"],
        "{me_north} {me_south}"
    );
    assert_ne!(me_north["id"], me_south["id"]);
    let south_jane = client_of(&app, 2, "Jane");
    let theirs = ids(&south.get("/api/caseload"));
    assert!(theirs.contains(&south_jane), "{theirs:?}");
    assert!(!theirs.contains(&client_of(&app, 1, "Jane")));

    // A wrong password in one clinic counts against that clinic's account only.
    for _ in 0..5 {
        let r = south.call(
            "POST",
            "/api/auth/login",
            Some(&json!({ "realm": "staff", "username": CASEY.0, "password": "not her password at all" })),
        );
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let locked = south.call(
        "POST",
        "/api/auth/login",
        Some(&json!({ "realm": "staff", "username": CASEY.0, "password": CASEY.1 })),
    );
    assert_eq!(locked.status, 429, "{}", locked.body);
    AtHost::new(&app, "north.localhost").sign_in(CASEY);

    // Each clinic's audit chain holds its own entries and verifies on its own.
    let db = app.db();
    let verdict = caseport_shared::audit::verify_all(&db).unwrap();
    assert!(
        matches!(verdict, caseport_shared::audit::Verdict::Intact { .. }),
        "{verdict:?}"
    );
    let south_sign_ins = db
        .execute(
            "SELECT count(*) FROM audit_log WHERE clinic_id = 2 AND action = 'sign_in'",
            &[],
        )
        .unwrap();
    assert_eq!(south_sign_ins.first().and_then(|r| r.int(0)), Some(1));
}

#[test]
fn an_unknown_host_is_a_plain_404_and_a_suspended_clinic_says_so() {
    let app = demo_app();
    // Names this computer answers to (the local runtime's Host check lets them through), but
    // no clinic's.
    for host in ["west.localhost", "clinic-c.localhost"] {
        let at = AtHost::new(&app, host);
        let me = at.get("/api/auth/me");
        assert_eq!(me.status, 404, "{host}: {}", me.body);
        let login = at.call(
            "POST",
            "/api/auth/login",
            Some(&json!({ "realm": "staff", "username": CASEY.0, "password": CASEY.1 })),
        );
        assert_eq!(login.status, 404, "{host}: {}", login.body);
        assert!(login.session_cookie().is_none());
    }
    app.db()
        .execute("UPDATE clinics SET status = 'suspended' WHERE id = 2", &[])
        .unwrap();
    let south = AtHost::new(&app, "south.localhost");
    let r = south.call(
        "POST",
        "/api/auth/login",
        Some(&json!({ "realm": "staff", "username": CASEY.0, "password": CASEY.1 })),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("suspended"),
        "{}",
        r.body
    );
    // The other clinic carries on.
    AtHost::new(&app, "north.localhost").sign_in(CASEY);
}

#[test]
fn each_clinics_email_carries_its_own_name_and_portal() {
    let app = demo_app();
    let south = AtHost::new(&app, "south.localhost").sign_in(CASEY);
    let jane = client_of(&app, 2, "Jane");
    let path = format!("/api/clients/{jane}");
    let version = south.get(&path).json()["client"]["version"].clone();
    let fixed = south.call(
        "PATCH",
        &path,
        Some(&json!({ "version": version, "email": "jdoe123@hotmail.com" })),
    );
    assert_eq!(fixed.status, 200, "{}", fixed.body);
    let sent = south.call(
        "POST",
        &format!("{path}/portal-password/reset"),
        Some(&json!({ "delivery": "email", "idempotency_key": "south-reset-0001" })),
    );
    assert_eq!(sent.status, 200, "{}", sent.body);
    let mail = app.get("/dev/mailbox/api/messages").json()["messages"].clone();
    let newest = mail
        .as_array()
        .and_then(|m| {
            m.iter().find(|m| {
                m["to"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("jdoe123@hotmail.com")
            })
        })
        .cloned()
        .unwrap_or_else(|| panic!("no email to Jane: {mail}"));
    let text = newest.to_string();
    assert!(text.contains("South Clinic"), "{text}");
    assert!(
        text.contains("http://south.localhost:3000/portal/"),
        "{text}"
    );
    assert!(!text.contains("Caseport Demo Clinic"), "{text}");
    // Recorded in the South clinic only.
    let db = app.db();
    let deliveries = db
        .execute(
            "SELECT clinic_id FROM mail_deliveries WHERE client_id = ?",
            &[jane.into()],
        )
        .unwrap();
    assert_eq!(deliveries.first().and_then(|r| r.int(0)), Some(2));
}

#[test]
fn the_operator_creates_a_clinic_whose_first_administrator_starts_it_on_its_own_host() {
    let app = demo_app();
    let ops = AtHost::new(&app, "operator.localhost").sign_in(OPERATOR);
    let listed = ops.get("/api/operator/clinics").json();
    let names: Vec<&str> = listed["clinics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{listed}");
    assert!(names.contains(&"South Clinic (demo)"), "{listed}");

    // A host name another clinic has is refused, and nothing is created.
    let taken = ops.call(
        "POST",
        "/api/operator/clinics",
        Some(&json!({ "name": "West Clinic", "hosts": ["south.localhost"], "admin_email": "wes@west.example", "admin_name": "Wes Admin" })),
    );
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert_eq!(taken.json()["error"]["code"], "host_in_use");
    assert_eq!(
        app.count("SELECT count(*) FROM clinics WHERE name = 'West Clinic'"),
        0
    );
    let bad = ops.call(
        "POST",
        "/api/operator/clinics",
        Some(&json!({ "name": "West Clinic", "hosts": ["west.localhost"], "admin_email": "wes@west.example", "admin_name": "Wes Admin", "time_zone": "Mars/Olympus" })),
    );
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.json()["error"]["field"], "time_zone");
    let short = ops.call(
        "POST",
        "/api/operator/clinics",
        Some(&json!({ "name": "West Clinic", "hosts": ["west.localhost"], "admin_email": "wes@west.example", "admin_name": "Wes Admin", "password_min_length": 6 })),
    );
    assert_eq!(short.status, 422, "{}", short.body);
    assert_eq!(short.json()["error"]["field"], "password_min_length");
    assert_eq!(
        app.count("SELECT count(*) FROM clinics WHERE name = 'West Clinic'"),
        0
    );

    let created = ops.call(
        "POST",
        "/api/operator/clinics",
        Some(&json!({ "name": "West Clinic", "hosts": ["West.localhost"], "admin_email": "wes@west.example", "admin_name": "Wes Admin", "time_zone": "America/Denver", "password_min_length": 20 })),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let created = created.json();
    assert_eq!(created["clinic"]["hosts"], json!(["west.localhost"]));
    let temporary = created["temporary_password"].as_str().unwrap().to_string();

    // The first administrator signs in on the new host, must choose a password, then works.
    let west = AtHost::new(&app, "west.localhost");
    let first = west.call(
        "POST",
        "/api/auth/login",
        Some(&json!({ "realm": "staff", "username": "wes@west.example", "password": temporary })),
    );
    assert_eq!(
        first.json()["status"],
        "password_change_required",
        "{}",
        first.body
    );
    let changed = west.call(
        "POST",
        "/api/auth/change-password",
        Some(&json!({ "change_token": first.json()["change_token"], "new_password": "amber lantern quiet orchard sings" })),
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    let wes = AtHost {
        cookie: changed.session_cookie(),
        ..AtHost::new(&app, "west.localhost")
    };
    let all = wes.get("/api/caseload?scope=all");
    assert_eq!(all.json()["total"], 0, "{}", all.body);
    // Its own password rule, and the others keep the deployment's.
    assert_eq!(
        west.get("/api/auth/password-rules").json()["min_length"],
        20
    );
    assert_eq!(
        AtHost::new(&app, "north.localhost")
            .get("/api/auth/password-rules")
            .json()["min_length"],
        15
    );
    let relaxed = ops.call(
        "PATCH",
        &format!("/api/operator/clinics/{}", created["clinic"]["id"]),
        Some(&json!({ "password_min_length": null })),
    );
    assert_eq!(relaxed.status, 200, "{}", relaxed.body);
    assert_eq!(
        relaxed.json()["clinic"]["password_min_length"],
        serde_json::Value::Null
    );
    assert_eq!(
        west.get("/api/auth/password-rules").json()["min_length"],
        15
    );
    // Nobody else signs in there with another clinic's account.
    let casey = west.call(
        "POST",
        "/api/auth/login",
        Some(&json!({ "realm": "staff", "username": CASEY.0, "password": CASEY.1 })),
    );
    assert_eq!(casey.status, 401);

    // The operator's pages do not exist on a clinic's host, even for its administrator.
    assert_eq!(wes.get("/api/operator/clinics").status, 404);
    assert_eq!(west.get("/api/operator/clinics").status, 404);
    let north_admin = AtHost::new(&app, "north.localhost").sign_in(ADMIN);
    assert_eq!(north_admin.get("/api/operator/clinics").status, 404);

    // The operator's log holds it; the new clinic's chain starts with it.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE clinic_id = 0 AND action = 'clinic_created'"
        ),
        1
    );
    let verdict = caseport_shared::audit::verify_all(&app.db()).unwrap();
    assert!(
        matches!(verdict, caseport_shared::audit::Verdict::Intact { .. }),
        "{verdict:?}"
    );
}

#[test]
fn export_then_delete_leaves_nothing_of_the_clinic_and_the_others_untouched() {
    let app = demo_app();
    // Some of South's life: a sign-in, a corrected email, a password shown once.
    let south = AtHost::new(&app, "south.localhost").sign_in(ADMIN);
    let jane = client_of(&app, 2, "Jane");
    let shown = south.call(
        "POST",
        &format!("/api/clients/{jane}/portal-password/reset"),
        Some(&json!({ "delivery": "display", "idempotency_key": "south-shown-0001" })),
    );
    assert_eq!(shown.status, 200, "{}", shown.body);
    let north_before = (
        app.count("SELECT count(*) FROM staff WHERE clinic_id = 1"),
        app.count("SELECT count(*) FROM clients WHERE clinic_id = 1"),
        app.count("SELECT count(*) FROM audit_log WHERE clinic_id = 1"),
    );

    let ops = AtHost::new(&app, "operator.localhost").sign_in(OPERATOR);
    let delete = |confirm: &str| {
        let confirm: String = form_urlencoded::byte_serialize(confirm.as_bytes()).collect();
        ops.call(
            "DELETE",
            &format!("/api/operator/clinics/2?confirm={confirm}"),
            None,
        )
    };
    // Not while it is in use.
    assert_eq!(delete("South Clinic (demo)").status, 403);
    let suspended = ops.call(
        "PATCH",
        "/api/operator/clinics/2",
        Some(&json!({ "status": "suspended" })),
    );
    assert_eq!(suspended.status, 200, "{}", suspended.body);
    assert_eq!(south.get("/api/auth/me").status, 403);

    let export = ops.get("/api/operator/clinics/2/export");
    assert_eq!(export.status, 200, "{}", export.body);
    assert!(
        export
            .header("content-disposition")
            .unwrap_or_default()
            .contains("caseport-clinic-2-"),
        "{:?}",
        export.headers
    );
    let archive = export.json();
    assert_eq!(archive["clinic"]["name"], "South Clinic (demo)");
    assert_eq!(archive["staff"]["rows"].as_array().map(Vec::len), Some(3));
    assert_eq!(archive["clients"]["rows"].as_array().map(Vec::len), Some(7));
    assert_eq!(
        archive["audit_check"]["intact"], true,
        "{}",
        archive["audit_check"]
    );
    assert!(archive["audit_log"]["rows"].as_array().unwrap().len() >= 3);
    assert!(
        !export.body.contains("$argon2"),
        "the export holds a password hash"
    );
    assert!(
        !export
            .body
            .contains(shown.json()["temporary_password"].as_str().unwrap())
    );

    assert_eq!(delete("South").status, 422);
    let deleted = delete("South Clinic (demo)");
    assert_eq!(deleted.status, 200, "{}", deleted.body);

    // Nothing of it is left: no row in any table, no key-value key, no host name.
    let db = app.db();
    let tables = db
        .execute(
            "SELECT m.name FROM sqlite_schema m WHERE m.type = 'table'
             AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) WHERE name = 'clinic_id')",
            &[],
        )
        .unwrap()
        .texts(0);
    assert!(tables.len() >= 10, "{tables:?}");
    for table in &tables {
        assert_eq!(
            app.count(&format!("SELECT count(*) FROM {table} WHERE clinic_id = 2")),
            0,
            "{table} keeps rows of the deleted clinic"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM clinics WHERE id = 2"), 0);
    assert_eq!(
        app.count("SELECT count(*) FROM counters WHERE name = 'clients/2'"),
        0
    );
    let kv =
        caseport_shared::native::NativeDb::open(&app.state.join("sqlite_key_value.db")).unwrap();
    let left = kv
        .execute(
            "SELECT count(*) FROM spin_key_value WHERE key LIKE 'caseport/2/%'",
            &[],
        )
        .unwrap();
    assert_eq!(left.first().and_then(|r| r.int(0)), Some(0));
    assert_eq!(
        AtHost::new(&app, "south.localhost")
            .get("/api/auth/me")
            .status,
        404
    );

    // The other clinic is as it was, and whole; the operator's log says what was deleted.
    assert_eq!(
        (
            app.count("SELECT count(*) FROM staff WHERE clinic_id = 1"),
            app.count("SELECT count(*) FROM clients WHERE clinic_id = 1"),
            app.count("SELECT count(*) FROM audit_log WHERE clinic_id = 1"),
        ),
        north_before
    );
    AtHost::new(&app, "north.localhost").sign_in(CASEY);
    caseport_tests::checks::assert_whole(&db);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE clinic_id = 0 AND action = 'clinic_deleted' AND subject = 'clinic:2'"
        ),
        1
    );
}

/// The billable actions of the audit log, by clinic (what usage must match).
const BILLABLE: &str = "('sign_in', 'client_viewed', 'client_added', 'client_updated', 'portal_password_reset', 'portal_password_shown', 'portal_password_set')";

#[test]
fn usage_is_one_event_per_billable_call_and_agrees_with_the_audit_log() {
    let app = demo_app();
    let before = app.count("SELECT count(*) FROM usage_events");
    let north = AtHost::new(&app, "north.localhost");
    // Refused and unauthenticated calls are not billed.
    let wrong = north.call(
        "POST",
        "/api/auth/login",
        Some(&json!({ "realm": "staff", "username": CASEY.0, "password": "not the password" })),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(
        north
            .get(&format!("/api/clients/{}", client_of(&app, 1, "Jane")))
            .status,
        401
    );
    assert_eq!(app.count("SELECT count(*) FROM usage_events"), before);

    let casey = north.sign_in(CASEY); // sign_in
    let jane = client_of(&app, 1, "Jane");
    assert_eq!(casey.get(&format!("/api/clients/{jane}")).status, 200); // client_view
    assert_eq!(
        casey
            .get(&format!("/api/clients/{}", client_of(&app, 2, "Jane")))
            .status,
        404
    );
    let admin = AtHost::new(&app, "north.localhost").sign_in(ADMIN); // sign_in
    let key = json!({ "delivery": "email", "idempotency_key": "usage-test-0001" });
    let path = format!(
        "/api/clients/{}/portal-password/reset",
        client_of(&app, 1, "Fanny")
    );
    let first = admin.call("POST", &path, Some(&key)); // password_reset
    assert_eq!(first.status, 200, "{}", first.body);
    // The same click again (a retry): the same answer, not billed again.
    let again = admin.call("POST", &path, Some(&key));
    assert_eq!((again.status, again.json()), (first.status, first.json()));
    let south = AtHost::new(&app, "south.localhost").sign_in(ROBIN); // sign_in, South

    let ops = AtHost::new(&app, "operator.localhost").sign_in(OPERATOR);
    let page = ops.get("/api/operator/usage?limit=1000");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.header("content-type"),
        Some("application/cloudevents-batch+json; charset=utf-8")
    );
    let events = page.json().as_array().unwrap().clone();
    // CloudEvents 1.0: id, source, specversion and type are required; ids are unique.
    let mut ids = std::collections::HashSet::new();
    for e in &events {
        for attribute in ["id", "source", "specversion", "type", "subject", "time"] {
            assert!(
                e[attribute].as_str().is_some_and(|v| !v.is_empty()),
                "{attribute} in {e}"
            );
        }
        assert_eq!(e["specversion"], "1.0");
        assert!(
            e["type"]
                .as_str()
                .unwrap()
                .starts_with("org.caseport.usage.")
        );
        assert_eq!(e["data"]["value"], 1);
        assert!(
            ids.insert(e["id"].as_str().unwrap().to_string()),
            "duplicate id {e}"
        );
    }
    let of = |subject: &str, kind: &str| {
        events
            .iter()
            .filter(|e| {
                e["subject"] == subject && e["type"] == format!("org.caseport.usage.{kind}")
            })
            .count()
    };
    assert_eq!(of("clinic/1", "sign_in"), 2, "{events:?}");
    assert_eq!(of("clinic/1", "client_view"), 1);
    assert_eq!(of("clinic/1", "password_reset"), 1);
    assert_eq!(of("clinic/2", "sign_in"), 1);
    assert!(
        events.iter().all(|e| e["subject"] != "clinic/0"),
        "operators are not billed"
    );
    drop(south);

    // Usage and the audit log agree, clinic by clinic and entry by entry.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM audit_log WHERE clinic_id != 0 AND action IN {BILLABLE}"
        )),
        app.count("SELECT count(*) FROM usage_events")
    );
    assert_eq!(
        app.count("SELECT count(*) FROM usage_events u LEFT JOIN audit_log a ON a.seq = u.audit_seq WHERE a.seq IS NULL OR a.clinic_id != u.clinic_id"
        ),
        0
    );

    // Pages follow each other without a gap or an overlap.
    let first_page = ops.get("/api/operator/usage?limit=2");
    let next = first_page.header("link").unwrap_or_default().to_string();
    assert!(next.contains("rel=\"next\""), "{next}");
    let after = first_page.json()[1]["id"].as_str().unwrap().to_string();
    let second = ops
        .get(&format!("/api/operator/usage?after={after}&limit=2"))
        .json();
    assert_eq!(second[0]["id"], events[2]["id"]);

    // The operator's summary: today's calls per clinic and meter.
    let summary = ops.get("/api/operator/usage/summary").json();
    let north_sign_ins = summary["days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["clinic_id"] == 1 && d["meter"] == "sign_in")
        .cloned()
        .unwrap_or_default();
    assert_eq!(north_sign_ins["calls"], 2, "{summary}");
    assert_eq!(ops.get("/api/operator/usage?limit=0").status, 422);
}

#[test]
fn a_fresh_installation_sets_up_its_operator_on_the_operator_host_and_its_clinic_elsewhere() {
    let app = caseport_tests::Up::caseport()
        .variable("setup_token", "let-me-set-up-caseport")
        .variable("operator_host", "ops.localhost")
        .start()
        .unwrap();
    let setup = |at: &AtHost, email: &str| {
        at.call(
            "POST",
            "/api/setup",
            Some(&json!({ "setup_token": "let-me-set-up-caseport", "email": email, "display_name": "Head Admin", "password": "granite harbour evening bells" })),
        )
    };
    let ops = AtHost::new(&app, "ops.localhost");
    assert_eq!(setup(&ops, "ops@caseport.example").status, 201);
    // No host name is mapped: any other name is the installation's one clinic, whose own
    // first administrator is set up separately.
    let clinic = AtHost::new(&app, "portal.localhost");
    assert_eq!(setup(&clinic, "head@clinic.example").status, 201);
    let ops = ops.sign_in(("ops@caseport.example", "granite harbour evening bells"));
    let listed = ops.get("/api/operator/clinics");
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.json()["clinics"][0]["id"], 1);
    // A second clinic may not strand the first: it must have its host names before any is
    // mapped.
    let new = json!({ "name": "Second Clinic", "hosts": ["second.localhost"], "admin_email": "sec@second.example", "admin_name": "Sec Admin" });
    let stranding = ops.call("POST", "/api/operator/clinics", Some(&new));
    assert_eq!(stranding.status, 422, "{}", stranding.body);
    assert!(
        stranding.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Clinic 1 its host names first"),
        "{}",
        stranding.body
    );
    assert_eq!(
        AtHost::new(&app, "anything.localhost")
            .get("/api/auth/me")
            .status,
        401
    );
    // The operators' host name is theirs: no clinic may take it, in any case.
    let operators_own = ops.call(
        "PATCH",
        "/api/operator/clinics/1",
        Some(&json!({ "hosts": ["portal.localhost", "OPS.localhost"] })),
    );
    assert_eq!(operators_own.status, 409, "{}", operators_own.body);
    assert_eq!(operators_own.json()["error"]["code"], "host_in_use");
    assert_eq!(operators_own.json()["error"]["field"], "hosts");
    assert_eq!(app.count("SELECT count(*) FROM clinic_hosts"), 0);
    let mapped = ops.call(
        "PATCH",
        "/api/operator/clinics/1",
        Some(&json!({ "name": "First Clinic", "hosts": ["portal.localhost"] })),
    );
    assert_eq!(mapped.status, 200, "{}", mapped.body);
    assert_eq!(
        ops.call("POST", "/api/operator/clinics", Some(&new)).status,
        201
    );
    assert_eq!(
        AtHost::new(&app, "anything.localhost")
            .get("/api/auth/me")
            .status,
        404
    );
    let head = clinic.sign_in(("head@clinic.example", "granite harbour evening bells"));
    assert_eq!(head.get("/api/operator/clinics").status, 404);
    // Each is its own account: the operator's does not open the clinic, nor the reverse.
    let crossed = AtHost::new(&app, "portal.localhost").call(
        "POST",
        "/api/auth/login",
        Some(&json!({ "realm": "staff", "username": "ops@caseport.example", "password": "granite harbour evening bells" })),
    );
    assert_eq!(crossed.status, 401);
}
