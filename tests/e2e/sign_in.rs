//! Sign-in through the real `login` component: demo staff, forced change of a temporary
//! password, the policy, lockout, sessions, bad input, the audit trail, reset and setup.

use std::sync::Arc;
use std::thread;

use caseport_shared::audit::{self, Verdict};
use caseport_shared::domain::{Account, AccountKind};
use caseport_shared::passwords;
use caseport_shared::ports::Db;
use caseport_shared::tokens::{self, Purpose};
use caseport_tests::demo::{ADMIN, CASEY, ROBIN};
use caseport_tests::{Reply, Server, Up};
use serde_json::json;

fn demo() -> Server {
    caseport_tests::demo_app()
}

fn login(app: &Server, realm: &str, username: &str, password: &str) -> Reply {
    app.post(
        "/api/auth/login",
        &json!({ "realm": realm, "username": username, "password": password }),
    )
}

fn count(db: &dyn Db, sql: &str) -> i64 {
    db.execute(sql, &[])
        .unwrap()
        .first()
        .and_then(|r| r.int(0))
        .unwrap()
}

fn jane_id(db: &dyn Db) -> i64 {
    count(
        db,
        "SELECT id FROM clients WHERE clinic_id = 1 AND last_name = 'Doe' AND first_name = 'Jane'",
    )
}

/// Gives Jane Doe a temporary password, as Reset and Send New will, expiring in `hours`.
fn give_jane_temporary(app: &Server, hours: i64) -> String {
    let db = app.db();
    let temp = passwords::temporary().unwrap();
    let phc = passwords::hash(&passwords::temporary_canonical(temp.expose())).unwrap();
    let expires = jiff::Timestamp::now().as_second() + hours * 3600;
    let expires = jiff::Timestamp::from_second(expires).unwrap().to_string();
    db.execute(
        "UPDATE credentials SET phc = ?, must_change = 1, temp_expires_at = ? WHERE owner_kind = 'client' AND owner_id = ?",
        &[phc.into(), expires.into(), jane_id(&db).into()],
    )
    .unwrap();
    temp.expose().to_string()
}

const JANE: &str = "jdoe123@hotmail1.cmo";

#[test]
fn demo_staff_sign_in_and_failures_look_alike() {
    let app = demo();
    for (user, password) in [CASEY, ROBIN, ADMIN] {
        let r = login(&app, "staff", user, password);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["status"], "ok");
        assert_eq!(r.json()["user"]["kind"], "staff");
    }
    assert_eq!(
        login(&app, "staff", ADMIN.0, ADMIN.1).json()["user"]["role"],
        "admin"
    );
    assert_eq!(
        login(&app, "staff", CASEY.0, CASEY.1).json()["user"]["display_name"],
        "Casey Manager"
    );
    // Usernames are not case-sensitive.
    assert_eq!(
        login(&app, "staff", "Casey.Manager@Example.org", CASEY.1).status,
        200
    );

    let wrong = login(&app, "staff", CASEY.0, "not the password");
    let unknown = login(&app, "staff", "nobody@example.org", "not the password");
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.json()["error"]["code"], "invalid_credentials");
    assert!(wrong.session_cookie().is_none());
    // A staff account cannot sign in to the portal, nor the other way round.
    assert_eq!(login(&app, "portal", CASEY.0, CASEY.1).body, unknown.body);
}

#[test]
fn a_temporary_password_must_be_changed_before_a_session_exists() {
    let app = demo();
    let temp = give_jane_temporary(&app, 72);
    let first = login(&app, "portal", JANE, &temp);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["status"], "password_change_required");
    assert!(
        first.session_cookie().is_none(),
        "no session before the change"
    );
    let change_token = first.json()["change_token"].as_str().unwrap().to_string();
    assert!(first.json()["expires_at"].as_str().unwrap().ends_with('Z'));
    // Typed in lower case and with spaces, the temporary password still works.
    let typed = temp.to_lowercase().replace('-', " ");
    assert_eq!(
        login(&app, "portal", JANE, &typed).json()["status"],
        "password_change_required"
    );

    let changed = app.post(
        "/api/auth/change-password",
        &json!({ "change_token": change_token, "new_password": "violet tractor sings quietly" }),
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.json()["user"]["kind"], "client");
    assert_eq!(changed.json()["user"]["display_name"], "Jane Doe");
    let cookie = changed.session_cookie().unwrap();
    let me = app.call("GET", "/api/auth/me", None, &[("cookie", &cookie)]);
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["user"]["kind"], "client");

    // The change token was used up; the temporary password no longer works.
    let again = app.post(
        "/api/auth/change-password",
        &json!({ "change_token": change_token, "new_password": "another fine passphrase" }),
    );
    assert_eq!(again.json()["error"]["code"], "invalid_change_token");
    assert_eq!(
        login(&app, "portal", JANE, &temp).json()["error"]["code"],
        "invalid_credentials"
    );
    assert_eq!(
        login(&app, "portal", JANE, "violet tractor sings quietly").json()["status"],
        "ok"
    );
}

#[test]
fn an_expired_temporary_password_says_so_only_when_it_was_right() {
    let app = demo();
    let temp = give_jane_temporary(&app, -1);
    let r = login(&app, "portal", JANE, &temp);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "temporary_password_expired");
    let wrong = login(&app, "portal", JANE, "ABCDEF-ABCDEF-ABCDEF");
    assert_eq!(wrong.json()["error"]["code"], "invalid_credentials");
}

#[test]
fn weak_new_passwords_are_refused_with_a_reason() {
    let app = demo();
    let temp = give_jane_temporary(&app, 72);
    let token = login(&app, "portal", JANE, &temp).json()["change_token"]
        .as_str()
        .unwrap()
        .to_string();
    let cases = [
        ("too short", "characters; this one has 9"),
        ("password", "at least 15"),
        ("qwertyuiop123456", "commonly used"),
        ("jdoe123 loves the seaside", "name or email"),
        ("the jane doe family portal", "name or email"),
        (temp.as_str(), "temporary password"),
        (&"x".repeat(300), "at most 256"),
    ];
    for (new, reason) in cases {
        let r = app.post(
            "/api/auth/change-password",
            &json!({ "change_token": token, "new_password": new }),
        );
        assert_eq!(r.status, 422, "{new}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "weak_password");
        assert_eq!(r.json()["error"]["field"], "new_password");
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(reason), "{new}: {message}");
    }
    // A refused attempt does not use the token up.
    let ok = app.post(
        "/api/auth/change-password",
        &json!({ "change_token": token, "new_password": "violet tractor sings quietly" }),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn five_wrong_passwords_lock_the_account_and_parallel_guesses_get_no_more() {
    let app = demo();
    for _ in 0..5 {
        assert_eq!(login(&app, "staff", CASEY.0, "wrong guess").status, 401);
    }
    let locked = login(&app, "staff", CASEY.0, CASEY.1);
    assert_eq!(locked.status, 429);
    assert_eq!(locked.json()["error"]["code"], "too_many_attempts");
    let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Another account is not affected.
    assert_eq!(login(&app, "staff", ROBIN.0, ROBIN.1).status, 200);

    for user in [ROBIN.0, "nobody-at-all@example.org"] {
        let app = Arc::new(demo());
        let before = count(
            &app.db(),
            "SELECT count(*) FROM audit_log WHERE action = 'sign_in_failed'",
        );
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let app = app.clone();
                let user = user.to_string();
                thread::spawn(move || login(&app, "staff", &user, "parallel guess").status)
            })
            .collect();
        let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let evaluated = statuses.iter().filter(|s| **s == 401).count();
        let refused = statuses.iter().filter(|s| **s == 429).count();
        assert_eq!(evaluated + refused, 50, "{statuses:?}");
        assert!(
            evaluated <= 5,
            "{evaluated} guesses were checked for {user}"
        );
        let failures = count(
            &app.db(),
            "SELECT count(*) FROM audit_log WHERE action = 'sign_in_failed'",
        ) - before;
        assert!(failures <= 5, "{failures}");
    }
}

#[test]
fn changing_the_password_revokes_other_sessions_and_logout_revokes_its_own() {
    let app = demo();
    let phone = app.sign_in("staff", CASEY.0, CASEY.1);
    let desk = app.sign_in("staff", CASEY.0, CASEY.1);
    assert_ne!(phone, desk, "each sign-in has its own token");
    let me = |cookie: &str| {
        app.call("GET", "/api/auth/me", None, &[("cookie", cookie)])
            .status
    };
    assert_eq!((me(&phone), me(&desk)), (200, 200));

    let changed = app.call(
        "POST",
        "/api/auth/change-password",
        Some(&json!({ "current_password": CASEY.1, "new_password": "ocean lantern quietly hums" })),
        &[("cookie", &desk)],
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    let fresh = changed.session_cookie().unwrap();
    assert_eq!(me(&phone), 401);
    assert_eq!(me(&desk), 401);
    assert_eq!(me(&fresh), 200);

    let out = app.call("POST", "/api/auth/logout", None, &[("cookie", &fresh)]);
    assert_eq!(out.status, 204);
    let cleared = out.header("set-cookie").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(me(&fresh), 401);
    assert_eq!(login(&app, "staff", CASEY.0, CASEY.1).status, 401);
    assert_eq!(
        login(&app, "staff", CASEY.0, "ocean lantern quietly hums").status,
        200
    );
}

#[test]
fn a_wrong_current_password_changes_nothing() {
    let app = demo();
    let cookie = app.sign_in("staff", ROBIN.0, ROBIN.1);
    let r = app.call(
        "POST",
        "/api/auth/change-password",
        Some(
            &json!({ "current_password": "not it", "new_password": "ocean lantern quietly hums" }),
        ),
        &[("cookie", &cookie)],
    );
    assert_eq!(r.json()["error"]["code"], "invalid_credentials");
    assert_eq!(
        app.call("GET", "/api/auth/me", None, &[("cookie", &cookie)])
            .status,
        200
    );
    assert_eq!(login(&app, "staff", ROBIN.0, ROBIN.1).status, 200);

    // Wrong current passwords count on the account's one lockout counter: after five, both
    // the change and the sign-in are refused.
    let wrong = || {
        app.call(
            "POST",
            "/api/auth/change-password",
            Some(&json!({ "current_password": "still not it", "new_password": "ocean lantern quietly hums" })),
            &[("cookie", &cookie)],
        )
    };
    for _ in 0..5 {
        assert_eq!(wrong().json()["error"]["code"], "invalid_credentials");
    }
    assert_eq!(wrong().status, 429);
    assert_eq!(login(&app, "staff", ROBIN.0, ROBIN.1).status, 429);
}

#[test]
fn session_cookies_are_host_only_http_only_strict_and_secure() {
    let app = demo();
    let body = json!({ "realm": "staff", "username": CASEY.0, "password": CASEY.1 });
    let plain = app.post("/api/auth/login", &body);
    let cookie = plain.header("set-cookie").unwrap().to_string();
    // `__Host-`: browsers keep it only if Secure, with Path=/ and no Domain, so no sibling
    // subdomain or plain-HTTP page can set or shadow it.
    assert!(cookie.starts_with("__Host-caseport_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("; Secure")
            && cookie.contains("Path=/")
            && !cookie.contains("Domain"),
        "{cookie}"
    );
    assert_eq!(plain.header("cache-control"), Some("no-store"));
    for h in [
        "content-security-policy",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
    ] {
        assert!(plain.header(h).is_some(), "the sign-in answer lacks {h}");
    }
    let refused = app.post(
        "/api/auth/login",
        &json!({ "realm": "staff", "username": CASEY.0, "password": "no" }),
    );
    assert!(
        refused.header("content-security-policy").is_some(),
        "errors carry the headers too"
    );
}

#[test]
fn bad_input_gets_a_clear_4xx_and_writes_nothing() {
    let app = demo();
    let db = app.db();
    let audit_before = count(&db, "SELECT count(*) FROM audit_log");
    let raw = |body: &[u8], ct: &str| {
        let mut req = format!(
            "POST /api/auth/login HTTP/1.1\r\nhost: {}\r\ncontent-type: {ct}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            app.base,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        app.raw(&req)
    };
    let status = |raw: &str| {
        raw.split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0)
    };

    assert_eq!(status(&raw(b"{not json", "application/json")), 400);
    assert_eq!(
        status(&raw(br#"{"realm":"staff"}"#, "application/json")),
        422
    );
    assert_eq!(
        status(&raw(
            br#"{"realm":"staff","username":7,"password":"x"}"#,
            "application/json"
        )),
        422
    );
    assert_eq!(
        status(&raw(
            br#"{"realm":"staff","username":"a","password":"b"}"#,
            "text/plain"
        )),
        415
    );
    assert_eq!(
        status(&raw(
            br#"{"realm":"root","username":"a","password":"b"}"#,
            "application/json"
        )),
        422
    );
    assert_eq!(
        status(&raw(&vec![b' '; 1_000_000], "application/json")),
        413
    );
    assert_eq!(status(&raw(&[0xff, 0xfe, 0x00], "application/json")), 400);

    let missing = app.post(
        "/api/auth/login",
        &json!({ "realm": "staff", "username": "a" }),
    );
    assert_eq!(missing.json()["error"]["field"], "password");
    let unknown = app.post(
        "/api/auth/login",
        &json!({ "realm": "staff", "username": "a", "password": "b", "role": "admin" }),
    );
    assert_eq!(unknown.json()["error"]["field"], "role");
    for username in [
        "\u{0}",
        "🙂@🙂.com",
        "\u{202e}nimda@example.org",
        &"é".repeat(5000),
    ] {
        let r = login(&app, "staff", username, "whatever");
        assert_eq!(r.status, 401, "{username:?}: {}", r.body);
    }
    let foreign = app.call(
        "POST",
        "/api/auth/login",
        Some(&json!({ "realm": "staff", "username": CASEY.0, "password": CASEY.1 })),
        &[("origin", "https://evil.example")],
    );
    assert_eq!(foreign.status, 403);
    assert_eq!(foreign.json()["error"]["code"], "bad_origin");
    assert!(foreign.session_cookie().is_none());
    assert_eq!(app.send("PUT", "/api/auth/login", b"{}").status, 405);
    assert_eq!(app.get("/api/auth/nothing-here").status, 404);

    // Only the failed sign-ins of the unicode usernames were recorded; nothing else.
    let audit_after = count(&db, "SELECT count(*) FROM audit_log");
    assert_eq!(audit_after - audit_before, 4);
    assert_eq!(
        count(&db, "SELECT count(*) FROM staff WHERE clinic_id = 1"),
        3
    );
}

#[test]
fn the_audit_trail_records_each_step_without_passwords_and_detects_tampering() {
    let app = demo();
    let temp = give_jane_temporary(&app, 72);
    assert_eq!(login(&app, "staff", CASEY.0, "wrong guess").status, 401);
    app.sign_in("staff", CASEY.0, CASEY.1);
    for _ in 0..6 {
        login(&app, "staff", ROBIN.0, "wrong guess");
    }
    let token = login(&app, "portal", JANE, &temp).json()["change_token"]
        .as_str()
        .unwrap()
        .to_string();
    let new_password = "violet tractor sings quietly";
    assert_eq!(
        app.post(
            "/api/auth/change-password",
            &json!({ "change_token": token, "new_password": new_password })
        )
        .status,
        200
    );

    let db = app.db();
    let actions: Vec<String> = db
        .execute("SELECT action FROM audit_log ORDER BY seq", &[])
        .unwrap()
        .texts(0);
    for expected in [
        "demo_data_loaded",
        "sign_in_failed",
        "sign_in",
        "sign_in_throttled",
        "sign_in_change_required",
        "password_changed",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "no {expected} in {actions:?}"
        );
    }
    let everything: String = db
        .execute(
            "SELECT actor || action || coalesce(subject, '') || detail FROM audit_log",
            &[],
        )
        .unwrap()
        .texts(0)
        .concat();
    for secret in [
        CASEY.1,
        ROBIN.1,
        temp.as_str(),
        new_password,
        "wrong guess",
        token.as_str(),
    ] {
        assert!(
            !everything.contains(secret),
            "the audit log holds {secret:?}"
        );
    }
    assert!(
        matches!(audit::verify_all(&db).unwrap(), Verdict::Intact { entries } if entries == actions.len())
    );

    db.execute("DROP TRIGGER audit_log_append_only_update", &[])
        .unwrap();
    db.execute(
        "UPDATE audit_log SET actor = 'staff:2' WHERE action = 'sign_in'",
        &[],
    )
    .unwrap();
    assert!(matches!(
        audit::verify_all(&db).unwrap(),
        Verdict::Broken { .. }
    ));
}

#[test]
fn forgot_password_answers_alike_and_a_reset_link_works_once() {
    let app = demo();
    let known = app.post("/api/auth/forgot", &json!({ "email": JANE }));
    let unknown = app.post(
        "/api/auth/forgot",
        &json!({ "email": "someone.else@example.com" }),
    );
    assert_eq!(known.status, 202);
    assert_eq!(
        (known.status, known.body.clone()),
        (unknown.status, unknown.body.clone())
    );
    assert_eq!(
        app.post("/api/auth/forgot", &json!({ "email": "not an address" }))
            .json()["error"]["field"],
        "email"
    );

    // The link's token, as the email will carry it (the token itself is never stored).
    let db = app.db();
    let jane = Account {
        kind: AccountKind::Client,
        id: jane_id(&db),
    };
    let now = jiff::Timestamp::now().as_second();
    let north = caseport_shared::clinics::Scoped::new(&db, caseport_shared::clinics::FIRST);
    let token = tokens::issue_one_time(&north, Purpose::Reset, jane, now + 1800).unwrap();
    let expired = tokens::issue_one_time(&north, Purpose::Reset, jane, now - 1).unwrap();

    // Its page asks first whether the link still works; asking does not use it up.
    let check = |t: &str| app.post("/api/auth/reset-link", &json!({ "token": t }));
    for _ in 0..2 {
        assert_eq!(check(token.expose()).status, 200);
    }
    assert_eq!(
        check(expired.expose()).json()["error"]["code"],
        "invalid_reset_token"
    );
    assert_eq!(check("made-up").status, 401);
    let weak = app.post(
        "/api/auth/reset",
        &json!({ "token": token.expose(), "new_password": "short" }),
    );
    assert_eq!(weak.json()["error"]["code"], "weak_password");
    let done = app.post(
        "/api/auth/reset",
        &json!({ "token": token.expose(), "new_password": "meadow copper kettle song" }),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.session_cookie().is_some());
    let twice = app.post(
        "/api/auth/reset",
        &json!({ "token": token.expose(), "new_password": "another meadow kettle" }),
    );
    assert_eq!(twice.json()["error"]["code"], "invalid_reset_token");
    assert_eq!(check(token.expose()).status, 401);
    let late = app.post(
        "/api/auth/reset",
        &json!({ "token": expired.expose(), "new_password": "another meadow kettle" }),
    );
    assert_eq!(late.json()["error"]["code"], "invalid_reset_token");
    assert_eq!(
        login(&app, "portal", JANE, "meadow copper kettle song").status,
        200
    );

    // Per address, the fourth request within the hour is refused, known or not.
    for _ in 0..2 {
        assert_eq!(
            app.post(
                "/api/auth/forgot",
                &json!({ "email": "someone.else@example.com" })
            )
            .status,
            202
        );
    }
    let limited = app.post(
        "/api/auth/forgot",
        &json!({ "email": "someone.else@example.com" }),
    );
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").is_some());
}

#[test]
fn the_first_administrator_is_set_up_once_with_the_secret() {
    let app = Up::caseport()
        .variable("setup_token", "let-me-set-up-caseport")
        .start()
        .unwrap();
    let body = |token: &str| json!({ "setup_token": token, "email": "head@clinic.example", "display_name": "Head Admin", "password": "granite harbour evening bells" });
    let wrong = app.post("/api/setup", &body("guess"));
    assert_eq!(
        (wrong.status, wrong.json()["error"]["code"].as_str()),
        (403, Some("invalid_setup_token"))
    );
    let weak = app.post("/api/setup", &json!({ "setup_token": "let-me-set-up-caseport", "email": "head@clinic.example", "display_name": "Head Admin", "password": "short" }));
    assert_eq!(weak.json()["error"]["field"], "password");
    let created = app.post("/api/setup", &body("let-me-set-up-caseport"));
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.json()["user"]["role"], "admin");
    let again = app.post("/api/setup", &body("let-me-set-up-caseport"));
    assert_eq!(
        (again.status, again.json()["error"]["code"].as_str()),
        (409, Some("already_set_up"))
    );
    assert_eq!(
        login(
            &app,
            "staff",
            "head@clinic.example",
            "granite harbour evening bells"
        )
        .status,
        200
    );

    // Without the secret variable, setup is off; with demo data, an administrator exists.
    let plain = Up::caseport().start().unwrap();
    assert_eq!(
        plain.post("/api/setup", &body("")).json()["error"]["code"],
        "setup_disabled"
    );
    let demo = Up::caseport()
        .variable("demo_data", "true")
        .variable("setup_token", "x")
        .start()
        .unwrap();
    assert_eq!(demo.post("/api/setup", &body("x")).status, 409);
}

#[test]
fn without_demo_data_there_are_no_demo_accounts() {
    let app = Up::caseport().start().unwrap();
    assert_eq!(login(&app, "staff", CASEY.0, CASEY.1).status, 401);
    assert_eq!(count(&app.db(), "SELECT count(*) FROM staff"), 0);
}
