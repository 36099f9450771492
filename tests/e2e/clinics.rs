//! Several clinics on one deployment: each request's clinic comes from its host name, and
//! nothing of one clinic is reachable from another (`shared/src/clinics.rs`).
//!
//! The demo data has two clinics with the same staff and clients, each its own copy: clinic 1
//! on the loopback names and `north.localhost`, clinic 2 on `south.localhost`.

use caseport_shared::ports::Db;
use caseport_tests::demo::{ADMIN, CASEY};
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
