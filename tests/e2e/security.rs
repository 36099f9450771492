//! The security review's findings, each shown end to end through the real components: who
//! may take over an account, access that outlives its reason, and the front door under abuse.

use caseport_tests::demo::{ADMIN, CASEY, ROBIN};
use caseport_tests::{Reply, Server, Staff, Up, demo_app};
use serde_json::{Value, json};

fn mailbox(app: &Server) -> Vec<Value> {
    app.get("/dev/mailbox/api/messages").json()["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The captured mail once there are `n` messages (some are sent just after the answer).
fn wait_for_mail(app: &Server, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mail = mailbox(app);
        if mail.len() >= n || std::time::Instant::now() > deadline {
            return mail;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn history(staff: &Staff, id: i64) -> Vec<String> {
    staff.get(&format!("/api/clients/{id}/history")).json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn forgot_password_reaches_only_the_address_on_record_after_a_correction() {
    let app = demo_app();
    let casey = Staff::sign_in(&app, CASEY);
    let jane = app.client_id("Jane");
    // Jane's portal username is her old, mistyped address.
    let fixed = casey.correct_email(jane, "jdoe123@hotmail.com");
    assert_eq!(fixed.status, 200, "{}", fixed.body);
    let portal = casey.get(&format!("/api/clients/{jane}")).json()["portal"].clone();
    assert_eq!(
        portal["username"], "jdoe123@hotmail.com",
        "the username followed"
    );
    for address in ["jdoe123@hotmail1.cmo", "jdoe123@hotmail.com"] {
        let r = app.post("/api/auth/forgot", &json!({ "email": address }));
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let mail = wait_for_mail(&app, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM one_time_tokens WHERE purpose = 'reset'"),
        1,
        "one link, for the address on record"
    );
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0]["to"], "jdoe123@hotmail.com");
}

#[test]
fn the_previous_address_is_told_when_the_email_changes() {
    let app = demo_app();
    let casey = Staff::sign_in(&app, CASEY);
    let fanny = app.client_id("Fanny");
    let r = casey.correct_email(fanny, "fanny.new@example.net");
    assert_eq!(r.status, 200, "{}", r.body);
    let mail = wait_for_mail(&app, 1);
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0]["to"], "fanny.jackson@example.com");
    let text = mail[0]["text"].as_str().unwrap();
    assert!(text.contains("f***@example.net"), "{text}");
    assert!(!text.to_lowercase().contains("password:"), "{text}");
    assert!(
        !text.contains("Fanny") && !text.contains("Jackson"),
        "{text}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !history(&casey, fanny).contains(&"email_change_notice_sent".to_string()) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            history(&casey, fanny)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A mistyped address that cannot take mail is not written to.
    let jane = app.client_id("Jane");
    assert_eq!(casey.correct_email(jane, "jdoe123@hotmail.com").status, 200);
    assert_eq!(
        app.count("SELECT count(*) FROM mail_deliveries WHERE purpose = 'email_changed'"),
        1
    );
}

#[test]
fn an_administrator_takes_access_away_at_once() {
    let app = demo_app();
    let admin = Staff::sign_in(&app, ADMIN);
    let robin = Staff::sign_in(&app, ROBIN);
    let robin_id = app
        .count("SELECT id FROM staff WHERE clinic_id = 1 AND email = 'robin.support@example.org'");
    let allison = app.client_id("Allison");
    assert_eq!(robin.get(&format!("/api/clients/{allison}")).status, 200);

    // Off the caseload: the client is gone for Robin.
    let removed = admin.app.call(
        "DELETE",
        &format!("/api/clients/{allison}/assignments/{robin_id}"),
        None,
        &[("cookie", &admin.cookie)],
    );
    assert_eq!(removed.status, 204, "{}", removed.body);
    assert_eq!(robin.get(&format!("/api/clients/{allison}")).status, 404);
    assert!(history(&admin, allison).contains(&"client_unassigned".to_string()));

    // Disabled: the open session ends and sign-in is refused.
    let off = admin.send(
        "PATCH",
        &format!("/api/staff/{robin_id}"),
        &json!({ "status": "disabled" }),
    );
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(off.json()["staff"]["status"], "disabled");
    assert_eq!(robin.get("/api/caseload").status, 401);
    let login = app.post(
        "/api/auth/login",
        &json!({ "realm": "staff", "username": ROBIN.0, "password": ROBIN.1 }),
    );
    assert_eq!(login.status, 401);
    // Case managers cannot do it.
    let casey = Staff::sign_in(&app, CASEY);
    let refused = casey.send(
        "PATCH",
        &format!("/api/staff/{robin_id}"),
        &json!({ "status": "active" }),
    );
    assert_eq!(refused.status, 403);
    let on = admin.send(
        "PATCH",
        &format!("/api/staff/{robin_id}"),
        &json!({ "status": "active" }),
    );
    assert_eq!(on.status, 200);
    Staff::sign_in(&app, ROBIN);
}

fn login_from(app: &Server, forwarded_for: &str, password: &str) -> Reply {
    app.call(
        "POST",
        "/api/auth/login",
        Some(&json!({ "realm": "staff", "username": CASEY.0, "password": password })),
        &[("x-forwarded-for", forwarded_for)],
    )
}

#[test]
fn a_stranger_cannot_lock_a_person_out_and_only_trusted_proxies_name_the_client() {
    // Behind a proxy Caseport trusts (here, this computer): each client is counted apart.
    let app = caseport_tests::Up::local()
        .variable("trusted_proxies", "127.0.0.1")
        .start()
        .unwrap();
    for _ in 0..5 {
        assert_eq!(
            login_from(&app, "198.51.100.7", "a stranger's guess").status,
            401
        );
    }
    let slowed = login_from(&app, "198.51.100.7", CASEY.1);
    assert_eq!(
        slowed.status, 429,
        "the stranger's network waits, even with the password"
    );
    let wait: u64 = slowed.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    assert_eq!(
        login_from(&app, "203.0.113.5", CASEY.1).status,
        200,
        "Casey, from her own network, signs in"
    );
    // A client cannot pick its network by writing the header: only what the proxy appended
    // counts, so a forged first hop changes nothing.
    assert_eq!(
        login_from(&app, "203.0.113.5, 198.51.100.7", "guess").status,
        429
    );

    // With no trusted proxy the header is ignored: every request is this computer.
    let plain = demo_app();
    for i in 0..5 {
        let r = login_from(&plain, &format!("198.51.100.{i}"), "guess");
        assert_eq!(r.status, 401);
    }
    assert_eq!(login_from(&plain, "203.0.113.5", CASEY.1).status, 429);
}

#[test]
fn setup_guesses_are_throttled() {
    let app = caseport_tests::Up::caseport()
        .variable("setup_token", "the-real-setup-secret-value")
        .start()
        .unwrap();
    let attempt = |token: &str| {
        app.post(
            "/api/setup",
            &json!({ "setup_token": token, "email": "first@example.org", "display_name": "First Admin", "password": "violet tractor sings quietly" }),
        )
    };
    for i in 0..10 {
        assert_eq!(attempt(&format!("guess-{i}")).status, 403);
    }
    let refused = attempt("the-real-setup-secret-value");
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.header("retry-after").is_some());
}

#[test]
fn names_that_could_pass_for_someone_else_are_refused() {
    let app = demo_app();
    let casey = Staff::sign_in(&app, CASEY);
    let jane = app.client_id("Jane");
    let version = casey.get(&format!("/api/clients/{jane}")).json()["client"]["version"].clone();
    for (field, value) in [
        ("first_name", "Jane\u{202E}eoD"),
        ("last_name", "Do\u{200B}e"),
        ("email", "jdoe\u{200B}123@hotmail.com"),
    ] {
        let r = casey.send(
            "PATCH",
            &format!("/api/clients/{jane}"),
            &json!({ "version": version, field: value }),
        );
        assert_eq!(r.status, 422, "{field}: {}", r.body);
        assert_eq!(r.json()["error"]["field"], field);
    }
    let added = casey.send(
        "POST",
        "/api/clients",
        &json!({ "first_name": "Mallory\u{2067}", "last_name": "Doe", "dob": "2015-01-01" }),
    );
    assert_eq!(added.status, 422, "{}", added.body);
    assert_eq!(
        casey.get(&format!("/api/clients/{jane}")).json()["client"]["version"],
        version,
        "nothing changed"
    );
}

#[test]
fn a_loopback_server_answers_other_host_names_only_when_allowed() {
    let raw = |app: &Server| {
        app.raw(b"GET /api/status HTTP/1.1\r\nHost: clinic.test\r\nConnection: close\r\n\r\n")
    };
    let app = caseport_tests::demo_app();
    assert!(raw(&app).starts_with("HTTP/1.1 403"), "{}", raw(&app));
    let app = Up::local()
        .args(["--allow-host", "clinic.test"])
        .start()
        .unwrap();
    assert!(raw(&app).starts_with("HTTP/1.1 200"), "{}", raw(&app));
}

#[test]
fn a_staff_member_who_forgot_their_password_gets_a_link_at_their_work_email_only_while_active() {
    let app = demo_app();
    let robin_id = app
        .count("SELECT id FROM staff WHERE clinic_id = 1 AND email = 'robin.support@example.org'");
    let tokens = || {
        app.count(&format!(
                "SELECT count(*) FROM one_time_tokens WHERE purpose = 'reset' AND owner_kind = 'staff' AND owner_id = {robin_id}"
            ),
        )
    };
    let forgot = |realm: &str, email: &str| {
        app.post(
            "/api/auth/forgot",
            &json!({ "email": email, "realm": realm }),
        )
    };
    // The portal realm does not reach a staff account, and says the same.
    let portal = forgot("portal", ROBIN.0);
    assert_eq!(tokens(), 0);
    let asked = forgot("staff", "Robin.Support@example.org");
    assert_eq!((asked.status, &asked.body), (portal.status, &portal.body));
    assert_eq!(tokens(), 1);
    let mail = wait_for_mail(&app, 1);
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0]["to"], ROBIN.0);
    let text = mail[0]["text"].as_str().unwrap();
    assert!(text.contains("Caseport staff account"), "{text}");
    // The link opens the staff console's page on this very server.
    let link = text
        .lines()
        .find(|l| l.contains("#token="))
        .unwrap()
        .trim()
        .to_string();
    assert!(
        link.starts_with(&app.url("/staff/reset.html#token=")),
        "{link}"
    );
    let page = app.get("/staff/reset.html");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-view=\"reset\""), "{}", page.body);
    let token = link.split("#token=").nth(1).unwrap();
    let done = app.post(
        "/api/auth/reset",
        &json!({ "token": token, "new_password": "harbour lantern autumn field" }),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json()["user"]["kind"], "staff");
    let sign_in = |password: &str| {
        app.post(
            "/api/auth/login",
            &json!({ "realm": "staff", "username": ROBIN.0, "password": password }),
        )
        .status
    };
    assert_eq!(sign_in(ROBIN.1), 401);
    assert_eq!(sign_in("harbour lantern autumn field"), 200);

    // Disabled, Robin gets no link, and the answer is the same.
    let admin = Staff::sign_in(&app, ADMIN);
    let off = admin.send(
        "PATCH",
        &format!("/api/staff/{robin_id}"),
        &json!({ "status": "disabled" }),
    );
    assert_eq!(off.status, 200, "{}", off.body);
    let refused = forgot("staff", ROBIN.0);
    assert_eq!(
        (refused.status, &refused.body),
        (portal.status, &portal.body)
    );
    assert_eq!(tokens(), 0);
    let bad = forgot("admins", ROBIN.0);
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.json()["error"]["field"], "realm");
}

#[test]
fn a_client_cannot_forge_the_spin_headers_the_api_components_read() {
    // The runtime adds its own spin-* headers after any a client sent, as Spin does; the
    // components read the last of each (`caseport_edge::Request::header`), the runtime's.
    let app = demo_app();
    let casey = Staff::sign_in(&app, CASEY);
    let ids: Vec<(String, i64)> = casey.get("/api/caseload?limit=100").json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["client_id"].as_i64().unwrap(),
            )
        })
        .collect();
    let jane = ids.iter().find(|(name, _)| name == "Doe, Jane").unwrap().1;
    let other = ids.iter().find(|(_, id)| *id != jane).unwrap().1;

    // A forged route parameter names another client: Jane's record is still the one answered.
    let view = app.call(
        "GET",
        &format!("/api/clients/{jane}"),
        None,
        &[
            ("cookie", &casey.cookie),
            ("spin-path-match-id", &other.to_string()),
        ],
    );
    assert_eq!(view.status, 200, "{}", view.body);
    assert_eq!(view.json()["client"]["first_name"], "Jane");
    assert_eq!(view.json()["client"]["last_name"], "Doe");

    // A forged address that matches a foreign Origin does not get past the Origin check.
    let foreign = app.call(
        "POST",
        "/api/auth/login",
        Some(&json!({ "realm": "staff", "username": CASEY.0, "password": CASEY.1 })),
        &[
            ("origin", "https://evil.example"),
            ("spin-full-url", "https://evil.example/api/auth/login"),
        ],
    );
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    assert_eq!(foreign.json()["error"]["code"], "bad_origin");
    assert!(foreign.session_cookie().is_none());
}
