//! Caseport's own spin.toml under the runtime: the web component and the local mailbox.

use caseport_tests::demo::{ADMIN, CASEY};
use caseport_tests::{Server, Staff, Up, root};
use serde_json::json;

const SECURITY_HEADERS: &[&str] = &[
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "strict-transport-security",
];

#[test]
fn the_start_page_is_served_with_type_etag_and_security_headers() {
    let app = Up::caseport().start().unwrap();
    let page = app.get("/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body.contains("<title>Caseport"), "{}", page.body);
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    for h in SECURITY_HEADERS {
        assert!(page.header(h).is_some(), "missing {h}");
    }
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    let etag = page.header("etag").unwrap().to_string();
    let again = app.get_with("/", &[("if-none-match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let changed = app.get_with("/", &[("if-none-match", "\"something-else\"")]);
    assert_eq!(changed.status, 200);

    let css = app.get("/css/app.css");
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_ne!(css.header("etag"), Some(etag.as_str()));
    let svg = app.get("/favicon.svg");
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
}

#[test]
fn pages_arrive_whole_answer_head_and_lead_a_directory_to_its_slash() {
    let app = Up::caseport().start().unwrap();
    // Byte for byte, the large scripts too (their bodies take several writes).
    for file in [
        "index.html",
        "staff/index.html",
        "css/app.css",
        "js/staff.js",
    ] {
        let on_disk = std::fs::read_to_string(root().join("static").join(file)).unwrap();
        let served = app.get(&format!("/{file}"));
        assert_eq!(served.status, 200, "{file}");
        assert_eq!(served.body, on_disk, "{file}");
        assert_eq!(
            served.header("content-length"),
            Some(on_disk.len().to_string().as_str())
        );
    }
    let staff = app.get("/staff/");
    assert_eq!(app.get("/staff/?from=email").body, staff.body);

    let head =
        app.raw(b"HEAD /js/staff.js HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("etag: \""), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");

    let bare = app.raw(b"GET /staff HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(bare.starts_with("HTTP/1.1 308"), "{bare}");
    assert!(bare.contains("location: /staff/\r\n"), "{bare}");

    // An ETag among several a browser holds.
    let etag = staff.header("etag").unwrap();
    let listed = format!("\"{}\", {etag}", "0".repeat(24));
    assert_eq!(
        app.get_with("/staff/", &[("if-none-match", &listed)])
            .status,
        304
    );
}

#[test]
fn unknown_pages_and_api_paths_get_404_in_their_own_form() {
    let app = Up::caseport().start().unwrap();
    let page = app.get("/no/such/page");
    assert_eq!(page.status, 404);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let api = app.get("/api/no-such-thing");
    assert_eq!(api.status, 404);
    assert_eq!(api.json()["error"]["code"], "not_found");
    let escape = app.get("/css/../../Cargo.toml");
    assert_eq!(escape.status, 404);
    let post = app.send("POST", "/", b"");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[test]
fn the_openapi_document_is_served() {
    let app = Up::caseport().start().unwrap();
    let doc = app.get("/api/openapi.yaml");
    assert_eq!(doc.status, 200);
    assert!(doc.body.starts_with("openapi: 3.1"), "{}", doc.body);
    assert_eq!(
        doc.header("content-type"),
        Some("application/yaml; charset=utf-8")
    );
}

#[test]
fn the_local_mailbox_captures_what_the_components_send_and_nothing_else() {
    let app = caseport_tests::demo_app();
    let page = app.get("/dev/mailbox");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Local only"), "{}", page.body);
    assert_eq!(
        app.get("/dev/mailbox/api/messages").json()["messages"],
        json!([])
    );

    // A reset hands the email to the mailbox through service chaining.
    let casey = Staff::sign_in(&app, CASEY);
    let albert = app.client_id("Jack");
    let sent = casey.send(
        "POST",
        &format!("/api/clients/{albert}/portal-password/reset"),
        &json!({ "delivery": "email", "idempotency_key": "mailbox-test-1" }),
    );
    assert_eq!(sent.status, 200, "{}", sent.body);
    let listed = app.get("/dev/mailbox/api/messages").json();
    let messages = listed["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    let username = sent.json()["username"].as_str().unwrap().to_string();
    assert!(
        messages[0]["subject"]
            .as_str()
            .unwrap()
            .contains("temporary password")
    );
    assert!(
        messages[0]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("Username: {username}")),
        "{}",
        messages[0]["text"]
    );

    // Mail is handed over by components only: a program on this computer cannot post any.
    let email = json!({
        "From": "portal@clinic.example",
        "To": "jdoe123@hotmail.com",
        "Subject": "Planted",
        "TextBody": "planted",
        "MessageStream": "outbound"
    });
    let planted = caseport_tests::post_json_with(
        &app,
        "/dev/mailbox/email",
        &email,
        &[("x-postmark-server-token", "local")],
    );
    assert_eq!(planted.status, 403, "{}", planted.body);
    assert_eq!(planted.json()["error"]["code"], "local_only");
    assert_eq!(
        app.get("/dev/mailbox/api/messages").json()["messages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_foreign_host_name_is_refused_on_loopback() {
    let app = caseport_tests::demo_app();
    let port = app.base.rsplit_once(':').unwrap().1.to_string();
    // A page of another site that pointed its own name at 127.0.0.1 (DNS rebinding).
    for path in ["/dev/mailbox/api/messages", "/api/auth/me", "/"] {
        let r = app.get_with(path, &[("host", &format!("evil.example:{port}"))]);
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "bad_host");
    }
    for host in [
        format!("localhost:{port}"),
        format!("clinic-a.localhost:{port}"),
    ] {
        let r = app.get_with("/dev/mailbox/api/messages", &[("host", &host)]);
        assert_eq!(r.status, 200, "{host}: {}", r.body);
    }
}

#[test]
fn with_spin_tomls_defaults_nothing_is_emailed_and_nothing_is_captured() {
    // spin.toml's defaults, with demo data only so that someone can sign in.
    let app = Up::caseport()
        .variable("demo_data", "true")
        .start()
        .unwrap();
    assert!(
        app.wait_for_output("Warning: Email is not set up"),
        "{}",
        app.output.text()
    );
    assert!(app.output.text().contains("mail_provider"));
    let status = app.get("/api/status").json();
    assert_eq!(status["status"], "attention");
    assert_eq!(status["mail"]["configured"], false);
    assert!(
        status["warnings"][0]
            .as_str()
            .unwrap()
            .contains("mail_provider")
    );

    for path in [
        "/dev/mailbox",
        "/dev/mailbox/api/messages",
        "/dev/mailbox/mailbox.js",
    ] {
        assert_eq!(app.get(path).status, 404, "{path}");
    }

    let casey = Staff::sign_in(&app, CASEY);
    let jane = app.client_id("Jane");
    let db = app.db();
    let credential = |db: &caseport_shared::native::NativeDb| {
        use caseport_shared::ports::Db;
        db.execute(
            "SELECT phc, changed_at FROM credentials WHERE owner_kind = 'client' AND owner_id = ?",
            &[jane.into()],
        )
        .unwrap()
        .rows
    };
    let before = credential(&db);
    let info = casey.get(&format!("/api/clients/{jane}")).json();
    assert_eq!(info["mail"]["configured"], false);
    let refused = casey.send(
        "POST",
        &format!("/api/clients/{jane}/portal-password/reset"),
        &json!({ "delivery": "email", "idempotency_key": "no-mail-0001" }),
    );
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "mail_not_configured");
    assert!(
        refused.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mail_provider")
    );
    assert_eq!(credential(&db), before, "no password written");
    for table in ["portal_resets", "mail_deliveries"] {
        use caseport_shared::ports::Db;
        let n = db
            .execute(&format!("SELECT count(*) FROM {table}"), &[])
            .unwrap()
            .first()
            .and_then(|r| r.int(0));
        assert_eq!(n, Some(0), "{table}");
    }

    // The show-once way still works.
    let shown = casey.send(
        "POST",
        &format!("/api/clients/{jane}/portal-password/reset"),
        &json!({ "delivery": "display", "idempotency_key": "no-mail-0002" }),
    );
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.json()["status"], "shown");

    // A new staff member's password is shown once, with the reason.
    let admin = Staff::sign_in(&app, ADMIN);
    let added = admin.send(
        "POST",
        "/api/staff",
        &json!({ "email": "new.hire@example.org", "display_name": "New Hire", "role": "case_manager" }),
    );
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(added.json()["delivery"], "display");
    assert!(
        added.json()["mail_error"]
            .as_str()
            .unwrap()
            .contains("mail_provider")
    );

    // Forgot password says plainly that no link can come.
    let forgot = app.post(
        "/api/auth/forgot",
        &json!({ "email": "jdoe123@hotmail1.cmo" }),
    );
    assert_eq!(forgot.status, 503, "{}", forgot.body);
    assert_eq!(forgot.json()["error"]["code"], "mail_not_configured");
}

#[test]
fn the_local_mailbox_does_not_exist_with_a_real_provider() {
    let app = Up::caseport()
        .variable("mail_provider", "postmark")
        .start()
        .unwrap();
    for path in [
        "/dev/mailbox",
        "/dev/mailbox/api/messages",
        "/dev/mailbox/mailbox.js",
    ] {
        let r = app.get(path);
        assert_eq!(r.status, 404, "{path}");
    }
}

#[test]
fn every_documented_route_is_served() {
    // The local mailbox exists only with the dev-mailbox provider, the webhooks only with a
    // real one: each route must be served by one of the two configurations.
    let local = Up::local().start().unwrap();
    let hosted = Up::caseport()
        .variable("mail_provider", "postmark")
        .variable("mail_api_url", "https://api.postmarkapp.com")
        .variable("mail_api_token", "a-server-token")
        .start()
        .unwrap();
    let doc = std::fs::read_to_string(caseport_tests::root().join("docs/openapi.yaml")).unwrap();
    let mut current: Option<String> = None;
    let mut checked = 0;
    for line in doc.lines() {
        if let Some(path) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
            current = Some(
                format!("/{path}")
                    .replace("{id}", "1")
                    .replace("{staff}", "1")
                    .replace("{provider}", "postmark"),
            );
            continue;
        }
        let method = line
            .trim()
            .strip_suffix(':')
            .filter(|_| line.starts_with("    ") && !line.starts_with("     "));
        if let (Some(path), Some(method @ ("get" | "post" | "put" | "patch" | "delete"))) =
            (&current, method)
        {
            let answers: Vec<(u16, String)> = [&local, &hosted]
                .iter()
                .map(|app| {
                    // The operator's routes answer only on the operators' host name (the
                    // demo's operator.localhost).
                    let operator_host = format!("operator.localhost:{}", app.port());
                    let headers: &[(&str, &str)] = if path.starts_with("/api/operator/") {
                        &[("host", &operator_host)]
                    } else {
                        &[]
                    };
                    let r = app.call(
                        &method.to_uppercase(),
                        path,
                        Some(&serde_json::json!({})),
                        headers,
                    );
                    (r.status, r.body)
                })
                .collect();
            assert!(
                answers
                    .iter()
                    .any(|(status, _)| ![404, 405, 501].contains(status)),
                "{method} {path}: {answers:?}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "only {checked} operations found in docs/openapi.yaml"
    );
}

#[test]
fn reachable_from_other_machines_it_warns_and_the_mailbox_answers_only_this_computer() {
    // Alone in a private network, listening on every address, reached from one that is not
    // loopback: as another machine on the clinic's network would reach it.
    let app = Up::local().start_isolated().unwrap();
    assert!(
        app.wait_for_output("with demo data"),
        "no warning about listening beyond loopback:\n{}",
        app.output.text()
    );
    let port = app.port();
    let (outside, inside, api) = app.in_network(|| {
        let outside = format!("http://{}:{port}", caseport_tests::ISOLATED_IP);
        let inside = format!("http://127.0.0.1:{port}");
        (
            Server::get_url(&format!("{outside}/dev/mailbox/api/messages"), &[]),
            Server::get_url(&format!("{inside}/dev/mailbox/api/messages"), &[]),
            Server::get_url(&format!("{outside}/api/auth/me"), &[]),
        )
    });
    assert_eq!(outside.status, 403, "{}", outside.body);
    assert_eq!(outside.json()["error"]["code"], "local_only");
    assert_eq!(inside.status, 200, "{}", inside.body);
    // Not on loopback, the runtime does not check Host names; the app does: the demo's
    // clinics are on this computer's names, so this address is no clinic's.
    assert_eq!(api.status, 404, "{}", api.body);
}
