//! Caseport's own spin.toml under the runtime: the web component and the local mailbox.

use caseport_tests::Up;

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
fn the_local_mailbox_captures_mail_sent_in_postmarks_format() {
    let app = Up::caseport().start().unwrap();
    let page = app.get("/dev/mailbox");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Local only"), "{}", page.body);
    assert_eq!(
        app.get("/dev/mailbox/api/messages").json()["messages"],
        serde_json::json!([])
    );

    let email = serde_json::json!({
        "From": "portal@clinic.example",
        "To": "jdoe123@hotmail.com",
        "Subject": "Your new temporary password",
        "TextBody": "Temporary password: <not in this test>",
        "HtmlBody": "<p>hi</p>",
        "MessageStream": "outbound"
    });
    let unauthenticated = app.send("POST", "/dev/mailbox/email", email.to_string().as_bytes());
    assert_eq!(unauthenticated.status, 401);
    assert_eq!(unauthenticated.json()["ErrorCode"], 10);
    let accepted = caseport_tests::post_json_with(
        &app,
        "/dev/mailbox/email",
        &email,
        &[("x-postmark-server-token", "local")],
    );
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let answer = accepted.json();
    assert_eq!(answer["ErrorCode"], 0);
    assert_eq!(answer["To"], "jdoe123@hotmail.com");
    let id = answer["MessageID"].as_str().unwrap().to_string();

    let listed = app.get("/dev/mailbox/api/messages").json();
    let messages = listed["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["id"], id.as_str());
    assert_eq!(messages[0]["to"], "jdoe123@hotmail.com");
    assert_eq!(messages[0]["subject"], "Your new temporary password");

    let bad = caseport_tests::post_json_with(
        &app,
        "/dev/mailbox/email",
        &serde_json::json!({"From": "a@b.c", "To": "nobody", "Subject": "x"}),
        &[("x-postmark-server-token", "local")],
    );
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["ErrorCode"], 300);
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
    let local = Up::caseport().start().unwrap();
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
                    .replace("{provider}", "postmark"),
            );
            continue;
        }
        let method = line
            .trim()
            .strip_suffix(':')
            .filter(|_| line.starts_with("    ") && !line.starts_with("     "));
        if let (Some(path), Some(method @ ("get" | "post" | "put" | "patch"))) = (&current, method)
        {
            let answers: Vec<(u16, String)> = [&local, &hosted]
                .iter()
                .map(|app| {
                    let r = app.call(
                        &method.to_uppercase(),
                        path,
                        Some(&serde_json::json!({})),
                        &[],
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
