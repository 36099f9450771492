//! Reset and Send New through the real `reset-and-send`, `login` and `client-info`
//! components: the local mailbox, and a fake Postmark, SendGrid and Resend that check what
//! Caseport sends and fail on demand.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use caseport_tests::demo::{ADMIN, CASEY, ROBIN};
use caseport_tests::fake_mail::{Act, FakeMail, Kind, temporary_password_in};
use caseport_tests::{Reply, Server, Staff, Up};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const WEBHOOK_SECRET: &str = "hook-secret-for-the-end-to-end-tests";
const TOKEN: &str = "provider-token-7f3a";

fn demo() -> Up {
    Up::local()
}

/// Caseport sending through `fake`, with webhooks enabled.
fn with_provider(fake: &FakeMail) -> Up {
    let secret = match fake.kind {
        Kind::Resend => format!("whsec_{}", STANDARD.encode(WEBHOOK_SECRET)),
        _ => WEBHOOK_SECRET.to_string(),
    };
    demo()
        .variable("mail_provider", fake.kind.name())
        .variable("mail_api_url", &fake.url())
        .variable("mail_api_token", TOKEN)
        .variable("mail_webhook_secret", &secret)
        .variable("clinic_name", "Sunrise Family Services")
        .variable("portal_url", "https://portal.sunrise.example")
}

fn client_id(app: &Server, first: &str) -> i64 {
    app.client_id(first)
}

fn portal_login(app: &Server, username: &str, password: &str) -> Reply {
    app.post(
        "/api/auth/login",
        &json!({ "realm": "portal", "username": username, "password": password }),
    )
}

fn reset(staff: &Staff, id: i64, delivery: &str, key: &str) -> Reply {
    staff.send(
        "POST",
        &format!("/api/clients/{id}/portal-password/reset"),
        &json!({ "delivery": delivery, "idempotency_key": key }),
    )
}

/// Corrects a client's email as a case manager does in Client Information.
fn correct_email(staff: &Staff, id: i64, email: &str) {
    let r = staff.correct_email(id, email);
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Gives a client a password of their own (the administrator's set password, no change
/// required), so a test can check when it stops working.
fn own_password(app: &Server, id: i64, password: &str) -> String {
    let admin = Staff::sign_in(app, ADMIN);
    let r = admin.send(
        "PUT",
        &format!("/api/clients/{id}/portal-password"),
        &json!({ "password": password, "password_confirm": password, "reset_required": false }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let username = r.json()["username"].as_str().unwrap().to_string();
    assert_eq!(portal_login(app, &username, password).status, 200);
    username
}

fn portal(staff: &Staff, id: i64) -> Value {
    staff.get(&format!("/api/clients/{id}")).json()["portal"].clone()
}

fn mailbox(app: &Server) -> Vec<Value> {
    app.get("/dev/mailbox/api/messages").json()["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The captured mail once there are `n` messages (a forgot-password link is sent just after
/// the answer).
fn wait_for_mail(app: &Server, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mail = mailbox(app);
        if mail.len() >= n || std::time::Instant::now() > deadline {
            return mail;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn code(r: &Reply) -> String {
    r.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Finishes the forced change after a temporary password; answers the new session's reply.
fn change(app: &Server, signed_in: &Reply, new_password: &str) -> Reply {
    let token = signed_in.json()["change_token"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(
        "/api/auth/change-password",
        &json!({ "change_token": token, "new_password": new_password }),
    )
}

#[test]
fn scenario_one_casey_resets_janes_password_by_email() {
    let app = demo().start().unwrap();
    let jane = client_id(&app, "Jane");
    let old = own_password(&app, jane, "violet garden passphrase");
    assert_eq!(old, "jdoe123@hotmail1.cmo");
    let janes_session = portal_login(&app, &old, "violet garden passphrase")
        .session_cookie()
        .unwrap();
    let me = |cookie: &str| {
        app.call("GET", "/api/auth/me", None, &[("cookie", cookie)])
            .status
    };
    assert_eq!(me(&janes_session), 200);
    let casey = Staff::sign_in(&app, CASEY);

    // The mistyped address is caught before anything is sent.
    let refused = reset(&casey, jane, "email", "scenario-1-first-try");
    assert_eq!(
        (refused.status, code(&refused).as_str()),
        (422, "email_invalid")
    );
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("hotmail.com"), "{message}");
    assert_eq!(
        message.matches("Did you mean").count(),
        1,
        "the suggestion is said once: {message}"
    );
    assert!(mailbox(&app).is_empty());

    correct_email(&casey, jane, "jdoe123@hotmail.com");
    let sent = reset(&casey, jane, "email", "scenario-1-second-try");
    assert_eq!(sent.status, 200, "{}", sent.body);
    let body = sent.json();
    assert_eq!(body["status"], "sent");
    assert_eq!(body["sent_to"], "j***@hotmail.com");
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));

    // Jane's old password failed from the moment the new one was sent, and her session ended.
    assert_eq!(me(&janes_session), 401);
    assert_eq!(
        code(&portal_login(&app, &old, "violet garden passphrase")),
        "invalid_credentials"
    );

    let mail = mailbox(&app);
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0]["to"], "jdoe123@hotmail.com");
    let text = mail[0]["text"].as_str().unwrap();
    let temporary = temporary_password_in(text).unwrap();
    assert!(text.contains("Username: jdoe123@hotmail.com"), "{text}");
    assert!(
        text.contains("Caseport Demo Clinic") && text.contains("/portal/"),
        "{text}"
    );
    for private in ["Doe", "2013", "555-555"] {
        assert!(
            !text.contains(private),
            "the email carries {private}: {text}"
        );
    }

    let first = portal_login(&app, "jdoe123@hotmail.com", &temporary);
    assert_eq!(
        first.json()["status"],
        "password_change_required",
        "{}",
        first.body
    );
    let changed = change(&app, &first, "lantern river quiet meadow");
    assert_eq!(changed.status, 200, "{}", changed.body);
    let cookie = changed.session_cookie().unwrap();
    let me = app
        .call("GET", "/api/auth/me", None, &[("cookie", &cookie)])
        .json();
    assert_eq!(me["profile"]["username"], "jdoe123@hotmail.com");
    assert_eq!(me["profile"]["dob"], "2013-02-19");
    assert_eq!(
        portal_login(&app, "jdoe123@hotmail.com", "lantern river quiet meadow").status,
        200
    );
    assert_eq!(
        code(&portal_login(&app, "jdoe123@hotmail.com", &temporary)),
        "invalid_credentials"
    );

    // Client Information answers "did the email arrive?", and the history says who did what.
    let info = portal(&casey, jane);
    assert_eq!(info["status"], "active");
    let last = &info["last_reset"];
    assert_eq!(last["by"], "Casey Manager");
    assert_eq!(last["delivery"], "email");
    assert_eq!(last["sent_to"], "jdoe123@hotmail.com");
    assert_eq!(last["mail_status"], "delivered");
    let history = casey.get(&format!("/api/clients/{jane}/history")).json();
    let actions: Vec<&str> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"portal_password_reset"), "{actions:?}");
}

fn webhook_call(app: &Server, kind: Kind, body: &Value, good: bool) -> Reply {
    // Each call has its own id, as Svix gives it (a repeated one is a replay).
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let id = format!(
        "msg_2KWPBgLlAfxdpx2AI54pPJ{}",
        CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    webhook_call_as(app, kind, body, good, &id)
}

/// A webhook call with Resend's message id `id` (Svix's `svix-id`).
fn webhook_call_as(app: &Server, kind: Kind, body: &Value, good: bool, id: &str) -> Reply {
    let path = format!("/api/mail/events/{}", kind.name());
    let raw = body.to_string();
    let secret = if good { WEBHOOK_SECRET } else { "a guess" };
    let headers: Vec<(String, String)> = match kind {
        Kind::Postmark | Kind::SendGrid => vec![(
            "authorization".into(),
            format!("Basic {}", STANDARD.encode(format!("caseport:{secret}"))),
        )],
        Kind::Resend => {
            let now = jiff::Timestamp::now().as_second();
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(format!("{id}.{now}.{raw}").as_bytes());
            let signature = STANDARD.encode(mac.finalize().into_bytes());
            vec![
                ("svix-id".into(), id.to_string()),
                ("svix-timestamp".into(), now.to_string()),
                ("svix-signature".into(), format!("v1,{signature}")),
            ]
        }
    };
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    app.call("POST", &path, Some(body), &headers)
}

/// The provider's own delivered or bounced event for a message.
fn event(
    kind: Kind,
    delivered: bool,
    message_id: &str,
    delivery_id: Option<&str>,
    to: &str,
) -> Value {
    let metadata = delivery_id.map_or(json!({}), |d| json!({ "delivery_id": d }));
    match (kind, delivered) {
        (Kind::Postmark, true) => {
            json!({ "RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound", "MessageID": message_id, "Recipient": to, "Tag": "", "DeliveredAt": "2026-11-25T16:33:54.9070259Z", "Details": "smtp;250 2.0.0 OK", "Metadata": metadata })
        }
        (Kind::Postmark, false) => {
            json!({ "RecordType": "Bounce", "ID": 4323372036854775807_i64, "Type": "HardBounce", "TypeCode": 1, "Name": "Hard bounce", "Tag": "", "MessageID": message_id, "Metadata": metadata, "ServerID": 23, "MessageStream": "outbound", "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).", "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.", "Email": to, "From": "portal@sunrise.example", "BouncedAt": "2026-11-25T16:33:54.9070259Z", "Inactive": true, "CanActivate": true, "Subject": "Your new temporary password" })
        }
        (Kind::SendGrid, d) => {
            let mut e = json!({ "email": to, "timestamp": 1764088434, "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "category": [], "sg_event_id": "sg_event_id_1", "sg_message_id": format!("{message_id}.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC1BC-A.0") });
            if d {
                e["event"] = json!("delivered");
                e["response"] = json!("250 OK");
            } else {
                e["event"] = json!("bounce");
                e["type"] = json!("bounce");
                e["status"] = json!("5.1.1");
                e["reason"] =
                    json!("550 5.1.1 The email account that you tried to reach does not exist.");
            }
            if let Some(d) = delivery_id {
                e["delivery_id"] = json!(d);
            }
            json!([{ "email": to, "timestamp": 1764088430, "event": "processed", "sg_message_id": format!("{message_id}.filter") }, e])
        }
        (Kind::Resend, d) => {
            let mut data = json!({ "created_at": "2026-11-25T16:33:54.000Z", "email_id": message_id, "from": "Sunrise <portal@sunrise.example>", "to": [to], "subject": "Your new temporary password", "tags": metadata });
            if !d {
                data["bounce"] = json!({ "message": "The recipient's email address does not exist.", "subType": "General", "type": "Permanent" });
            }
            json!({ "type": if d { "email.delivered" } else { "email.bounced" }, "created_at": "2026-11-25T16:33:55.000Z", "data": data })
        }
    }
}

#[test]
fn each_provider_gets_its_own_format_and_its_webhooks_update_the_status() {
    for kind in [Kind::Postmark, Kind::SendGrid, Kind::Resend] {
        let fake = FakeMail::start(kind, TOKEN).unwrap();
        let app = with_provider(&fake).start().unwrap();
        let casey = Staff::sign_in(&app, CASEY);
        let jane = client_id(&app, "Jane");
        let fanny = client_id(&app, "Fanny");
        correct_email(&casey, jane, "jdoe123@hotmail.com");

        let sent = reset(&casey, jane, "email", &format!("{}-jane-1", kind.name()));
        assert_eq!(sent.status, 200, "{kind:?}: {}", sent.body);
        assert_eq!(fake.violations(), Vec::<String>::new(), "{kind:?}");
        assert_eq!(fake.received().len(), 1);
        assert_eq!(fake.to(0), "jdoe123@hotmail.com");
        let text = fake.text(0);
        assert!(text.contains("Sunrise Family Services"), "{text}");
        assert!(
            text.contains("https://portal.sunrise.example/portal/"),
            "{text}"
        );
        let temporary = fake.password(0);
        assert_eq!(
            portal_login(&app, "jdoe123@hotmail.com", &temporary).json()["status"],
            "password_change_required"
        );
        assert_eq!(
            portal(&casey, jane)["last_reset"]["mail_status"],
            "accepted"
        );

        // Webhooks: refused without the secret, then delivered (found by our delivery id).
        let delivery_id = sent.json()["delivery_id"].as_str().unwrap().to_string();
        let message_id = fake.accepted_ids()[0].clone();
        let delivered = event(
            kind,
            true,
            &message_id,
            Some(&delivery_id),
            "jdoe123@hotmail.com",
        );
        let forged = webhook_call(&app, kind, &delivered, false);
        assert_eq!(forged.status, 401, "{kind:?}: {}", forged.body);
        assert_eq!(
            portal(&casey, jane)["last_reset"]["mail_status"],
            "accepted"
        );
        let ok = webhook_call(&app, kind, &delivered, true);
        assert_eq!(ok.status, 204, "{kind:?}: {}", ok.body);
        assert_eq!(
            portal(&casey, jane)["last_reset"]["mail_status"],
            "delivered"
        );

        // A bounce, found by the provider's message id alone.
        assert_eq!(
            reset(&casey, fanny, "email", &format!("{}-fanny-1", kind.name())).status,
            200
        );
        let message_id = fake.accepted_ids()[1].clone();
        let bounced = event(kind, false, &message_id, None, "fanny.jackson@example.com");
        assert_eq!(webhook_call(&app, kind, &bounced, true).status, 204);
        let last = portal(&casey, fanny)["last_reset"].clone();
        assert_eq!(last["mail_status"], "bounced", "{kind:?}: {last}");
        assert!(
            last["detail"].as_str().unwrap().contains("does not exist"),
            "{last}"
        );
        let history = casey
            .get(&format!("/api/clients/{fanny}/history"))
            .json()
            .to_string();
        assert!(history.contains("mail_bounced"), "{history}");

        // Another provider's path, and malformed events, are refused.
        let other = if kind == Kind::Postmark {
            "sendgrid"
        } else {
            "postmark"
        };
        assert_eq!(
            app.call(
                "POST",
                &format!("/api/mail/events/{other}"),
                Some(&json!({})),
                &[]
            )
            .status,
            404
        );
        assert_eq!(
            webhook_call(&app, kind, &json!({ "nothing": true }), true).status,
            400
        );
    }
}

#[test]
fn failed_sends_keep_the_old_password_and_say_why() {
    let fake = FakeMail::start(Kind::Postmark, TOKEN).unwrap();
    let app = with_provider(&fake)
        .variable("mail_timeout_seconds", "1")
        .start()
        .unwrap();
    let casey = Staff::sign_in(&app, CASEY);
    let fanny = client_id(&app, "Fanny");
    let username = own_password(&app, fanny, "copper kettle evening song");
    let still_works = || portal_login(&app, &username, "copper kettle evening song").status == 200;
    let mut key = 0;
    let mut attempt = |expect: &str| {
        key += 1;
        let before = fake.received().len();
        let r = reset(&casey, fanny, "email", &format!("failure-case-{key}"));
        assert_eq!(
            (r.status, code(&r).as_str()),
            (502, "mail_failed"),
            "{}",
            r.body
        );
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(expect), "{message}");
        assert!(
            message.contains("previous password still works"),
            "{message}"
        );
        assert!(still_works(), "after: {message}");
        let last = portal(&casey, fanny)["last_reset"].clone();
        assert_eq!(last["mail_status"], "failed");
        assert!(last["detail"].as_str().unwrap().contains(expect), "{last}");
        fake.received().len() - before
    };

    fake.then(Act::Fail(500))
        .then(Act::Fail(500))
        .then(Act::Fail(500));
    assert_eq!(attempt("HTTP 500"), 3, "retried, within the bound of 3");
    fake.then(Act::Slow(Duration::from_secs(3)));
    assert_eq!(
        attempt("did not answer within 1 seconds"),
        1,
        "a timeout is not retried"
    );
    fake.then(Act::InvalidAddress);
    assert_eq!(attempt("not valid"), 1, "a refused address is not retried");
    // Busy, then fine: sent on the second attempt.
    fake.then(Act::RateLimited { retry_after: 1 });
    let before = fake.received().len();
    let r = reset(&casey, fanny, "email", "failure-case-busy");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(fake.received().len() - before, 2);
    assert!(!still_works(), "the emailed password replaced the old one");
    assert_eq!(fake.violations(), Vec::<String>::new());

    // Nothing listening at all.
    let closed = caseport_tests::Upstream::closed_port().unwrap();
    let app = demo()
        .variable("mail_provider", "postmark")
        .variable("mail_api_url", &format!("http://127.0.0.1:{closed}"))
        .variable("mail_api_token", TOKEN)
        .start()
        .unwrap();
    let casey = Staff::sign_in(&app, CASEY);
    let fanny = client_id(&app, "Fanny");
    let username = own_password(&app, fanny, "copper kettle evening song");
    let r = reset(&casey, fanny, "email", "refused-connection");
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not reach"),
        "{}",
        r.body
    );
    assert_eq!(
        portal_login(&app, &username, "copper kettle evening song").status,
        200
    );
}

#[test]
fn double_clicks_and_two_case_managers_send_one_email() {
    let fake = FakeMail::start(Kind::Postmark, TOKEN).unwrap();
    let app = with_provider(&fake).start().unwrap();
    let casey = Staff::sign_in(&app, CASEY);
    let robin = Staff::sign_in(&app, ROBIN);
    let fanny = client_id(&app, "Fanny");

    // Ten identical requests at once, one idempotency key: one email, ten equal answers.
    fake.then(Act::Slow(Duration::from_millis(800)));
    let start = Arc::new(Barrier::new(10));
    let answers: Vec<(u16, String)> = thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let start = start.clone();
                let casey = &casey;
                s.spawn(move || {
                    start.wait();
                    let r = reset(casey, fanny, "email", "double-click-0001");
                    (r.status, r.body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 200, "{answers:?}");
    assert_eq!(fake.received().len(), 1);

    // Casey and Robin reset Jane at the same moment with their own keys.
    let jane = client_id(&app, "Jane");
    correct_email(&casey, jane, "jdoe123@hotmail.com");
    fake.then(Act::Slow(Duration::from_millis(800)));
    let start = Arc::new(Barrier::new(2));
    let replies: Vec<Reply> = thread::scope(|s| {
        let handles: Vec<_> = [(&casey, "casey-key-0001"), (&robin, "robin-key-0001")]
            .into_iter()
            .map(|(who, key)| {
                let start = start.clone();
                s.spawn(move || {
                    start.wait();
                    reset(who, jane, "email", key)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{replies:?}"
    );
    let refused = replies.iter().find(|r| r.status != 200).unwrap();
    assert_eq!(refused.status, 409);
    assert!(
        ["reset_in_progress", "recently_reset"].contains(&code(refused).as_str()),
        "{}",
        refused.body
    );
    assert_eq!(fake.received().len(), 2, "one email for Jane");
    // The one emailed password is the one that works.
    assert_eq!(
        portal_login(&app, "jdoe123@hotmail.com", &fake.password(1)).json()["status"],
        "password_change_required"
    );
}

/// Every file under `dir`, read whole.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

#[test]
fn a_shown_password_is_in_its_one_answer_and_nowhere_else() {
    let fake = FakeMail::start(Kind::Postmark, TOKEN).unwrap();
    let state = tempfile::tempdir().unwrap();
    let app = with_provider(&fake)
        .state_dir(state.path())
        .start()
        .unwrap();
    let admin = Staff::sign_in(&app, ADMIN);
    let casey = Staff::sign_in(&app, CASEY);
    let allison = client_id(&app, "Allison");
    let jane = client_id(&app, "Jane");

    let shown = reset(&admin, allison, "display", "display-key-0001");
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.header("cache-control"), Some("no-store"));
    let body = shown.json();
    assert_eq!(body["status"], "shown");
    let displayed = body["temporary_password"].as_str().unwrap().to_string();
    let username = body["username"].as_str().unwrap().to_string();
    assert!(fake.received().is_empty(), "nothing is emailed");
    let again = reset(&admin, allison, "display", "display-key-0001");
    assert_eq!(
        (again.status, code(&again).as_str()),
        (409, "already_shown")
    );
    assert!(!again.body.contains(&displayed));
    assert_eq!(portal(&admin, allison)["last_reset"]["delivery"], "display");
    let first = portal_login(&app, &username, &displayed);
    assert_eq!(first.json()["status"], "password_change_required");
    assert_eq!(
        change(&app, &first, "amber window distant hills").status,
        200
    );

    correct_email(&casey, jane, "jdoe123@hotmail.com");
    assert_eq!(reset(&casey, jane, "email", "emailed-key-0001").status, 200);
    let emailed = fake.password(0);
    let first = portal_login(&app, "jdoe123@hotmail.com", &emailed);
    assert_eq!(
        change(&app, &first, "quiet harbour tidal lantern").status,
        200
    );

    let (_, log) = app.stop().unwrap();
    let mut secrets: Vec<String> = [
        "amber window distant hills",
        "quiet harbour tidal lantern",
        TOKEN,
        WEBHOOK_SECRET,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for temporary in [&displayed, &emailed] {
        secrets.push(temporary.clone());
        secrets.push(temporary.replace('-', ""));
    }
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "the log carries a secret");
    }
    let stored = files(state.path());
    assert!(!stored.is_empty());
    for (path, bytes) in stored {
        for secret in &secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} carries a secret",
                path.display()
            );
        }
    }
}

#[test]
fn who_may_reset_and_set_and_what_is_refused() {
    let app = demo().start().unwrap();
    let casey = Staff::sign_in(&app, CASEY);
    let robin = Staff::sign_in(&app, ROBIN);
    let admin = Staff::sign_in(&app, ADMIN);
    let fanny = client_id(&app, "Fanny");
    let jane = client_id(&app, "Jane");

    // Not on Robin's caseload: the same 404 as a client that does not exist.
    let r = reset(&robin, fanny, "email", "robin-fanny-0001");
    assert_eq!((r.status, code(&r).as_str()), (404, "not_found"));
    assert_eq!(
        reset(&robin, 999_999, "email", "robin-none-0001").status,
        404
    );
    // Set-password is for administrators.
    let body = json!({ "password": "a long enough passphrase", "password_confirm": "a long enough passphrase", "reset_required": true });
    let r = casey.send(
        "PUT",
        &format!("/api/clients/{fanny}/portal-password"),
        &body,
    );
    assert_eq!((r.status, code(&r).as_str()), (403, "forbidden"));
    // Typed twice, the same; and not weak.
    let differ = json!({ "password": "a long enough passphrase", "password_confirm": "a long enough passphrasf", "reset_required": true });
    let r = admin.send(
        "PUT",
        &format!("/api/clients/{fanny}/portal-password"),
        &differ,
    );
    assert_eq!((r.status, code(&r).as_str()), (422, "passwords_differ"));
    let weak =
        json!({ "password": "password", "password_confirm": "password", "reset_required": true });
    let r = admin.send(
        "PUT",
        &format!("/api/clients/{fanny}/portal-password"),
        &weak,
    );
    assert_eq!(
        (
            r.status,
            code(&r).as_str(),
            r.json()["error"]["field"].as_str()
        ),
        (422, "weak_password", Some("password"))
    );
    // Password Reset Required: the client must choose a new one at the next sign-in.
    let r = admin.send(
        "PUT",
        &format!("/api/clients/{fanny}/portal-password"),
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["username"], "fanny.jackson@example.com");
    assert_eq!(portal(&admin, fanny)["status"], "password_reset_required");
    assert_eq!(portal(&admin, fanny)["last_reset"]["delivery"], "admin_set");
    let signed = portal_login(
        &app,
        "fanny.jackson@example.com",
        "a long enough passphrase",
    );
    assert_eq!(signed.json()["status"], "password_change_required");

    // Bad input changes nothing.
    let r = reset(&casey, jane, "carrier-pigeon", "bad-delivery-0001");
    assert_eq!(
        (r.status, r.json()["error"]["field"].as_str()),
        (422, Some("delivery"))
    );
    let r = reset(&casey, jane, "email", "short");
    assert_eq!(
        (r.status, r.json()["error"]["field"].as_str()),
        (422, Some("idempotency_key"))
    );
    let r = casey.send(
        "POST",
        &format!("/api/clients/{jane}/portal-password/reset"),
        &json!({ "delivery": "email" }),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let added = casey.send(
        "POST",
        "/api/clients",
        &json!({ "first_name": "Nomail", "last_name": "Person", "dob": "2010-01-01" }),
    );
    let nomail = added.json()["client"]["id"].as_i64().unwrap();
    let r = reset(&casey, nomail, "email", "no-email-0001");
    assert_eq!((r.status, code(&r).as_str()), (422, "no_email"));
    let r = app.call(
        "POST",
        &format!("/api/clients/{jane}/portal-password/reset"),
        Some(&json!({ "delivery": "email", "idempotency_key": "no-session-0001" })),
        &[],
    );
    assert_eq!(r.status, 401);
    let r = app.call(
        "POST",
        &format!("/api/clients/{jane}/portal-password/reset"),
        Some(&json!({ "delivery": "display", "idempotency_key": "cross-site-0001" })),
        &[
            ("cookie", &casey.cookie),
            ("origin", "https://evil.example"),
        ],
    );
    assert_eq!((r.status, code(&r).as_str()), (403, "bad_origin"));
    assert_eq!(
        portal(&casey, jane)["last_reset"],
        Value::Null,
        "nothing was reset"
    );
    assert!(mailbox(&app).is_empty());
}

#[test]
fn an_interrupted_send_leaves_a_password_that_works_and_says_so() {
    let fake = FakeMail::start(Kind::Postmark, TOKEN).unwrap();
    // The runtime stops the component after 2 s; the provider answers after 4 s.
    let app = with_provider(&fake)
        .arg("--request-timeout")
        .arg("2")
        .start()
        .unwrap();
    let casey = Staff::sign_in(&app, CASEY);
    let jane = client_id(&app, "Jane");
    own_password(&app, jane, "violet garden passphrase");
    correct_email(&casey, jane, "jdoe123@hotmail.com");
    // The username followed the corrected address.
    let old = "jdoe123@hotmail.com";
    fake.then(Act::Slow(Duration::from_secs(4)));
    let r = reset(&casey, jane, "email", "interrupted-0001");
    assert!(r.status >= 500, "{}", r.body);
    assert_eq!(fake.received().len(), 1, "the email went out");

    // The case manager sees that it is unresolved, and a second send waits for it.
    assert_eq!(portal(&casey, jane)["last_reset"]["mail_status"], "sending");
    let again = reset(&casey, jane, "email", "interrupted-0002");
    assert_eq!(
        (again.status, code(&again).as_str()),
        (409, "reset_in_progress")
    );
    // The old password works until the emailed one is used; the emailed one works.
    assert_eq!(
        portal_login(&app, old, "violet garden passphrase").status,
        200
    );
    let first = portal_login(&app, "jdoe123@hotmail.com", &fake.password(0));
    assert_eq!(
        first.json()["status"],
        "password_change_required",
        "{}",
        first.body
    );
    assert_eq!(
        code(&portal_login(&app, old, "violet garden passphrase")),
        "invalid_credentials"
    );
    assert_eq!(
        portal(&casey, jane)["last_reset"]["mail_status"],
        "delivered"
    );
}

#[test]
fn forgot_password_emails_a_link_that_works_once() {
    let app = demo().start().unwrap();
    let fanny = client_id(&app, "Fanny");
    let username = own_password(&app, fanny, "copper kettle evening song");
    let known = app.post(
        "/api/auth/forgot",
        &json!({ "email": "Fanny.Jackson@example.com" }),
    );
    let unknown = app.post(
        "/api/auth/forgot",
        &json!({ "email": "nobody@example.com" }),
    );
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    assert_eq!(known.status, 202);
    let mail = wait_for_mail(&app, 1);
    // Both answers are in, so both requests have recorded all they will: one link, one email.
    let db = app.db();
    let count = |sql: &str| {
        use caseport_shared::ports::Db;
        db.execute(sql, &[]).unwrap().first().and_then(|r| r.int(0))
    };
    assert_eq!(
        count("SELECT count(*) FROM one_time_tokens WHERE purpose = 'reset'"),
        Some(1),
        "only the known address gets a link"
    );
    assert_eq!(
        count("SELECT count(*) FROM mail_deliveries WHERE purpose = 'reset_link'"),
        Some(1)
    );
    assert_eq!(mailbox(&app).len(), 1, "only the known address gets mail");
    assert_eq!(mail[0]["to"], "fanny.jackson@example.com");
    let text = mail[0]["text"].as_str().unwrap();
    let token = text
        .split("#token=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(text.contains("30 minutes"), "{text}");
    // The old password keeps working until the link is used.
    assert_eq!(
        portal_login(&app, &username, "copper kettle evening song").status,
        200
    );
    let done = app.post(
        "/api/auth/reset",
        &json!({ "token": token, "new_password": "silver orchard morning bell" }),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(
        code(&portal_login(&app, &username, "copper kettle evening song")),
        "invalid_credentials"
    );
    assert_eq!(
        portal_login(&app, &username, "silver orchard morning bell").status,
        200
    );
    let twice = app.post(
        "/api/auth/reset",
        &json!({ "token": token, "new_password": "yet another long phrase" }),
    );
    assert_eq!(code(&twice), "invalid_reset_token");
}

#[test]
fn forgot_password_answers_without_waiting_for_the_provider() {
    let fake = FakeMail::start(Kind::Postmark, TOKEN).unwrap();
    let app = with_provider(&fake).start().unwrap();
    let fanny = client_id(&app, "Fanny");
    own_password(&app, fanny, "copper kettle evening song");
    // The provider takes the email and answers nothing until the test lets it.
    fake.then(Act::Hold);
    let known = app.post(
        "/api/auth/forgot",
        &json!({ "email": "fanny.jackson@example.com" }),
    );
    // The answer came while the provider still held the email: it did not wait for it, so
    // it says nothing about whether the address has an account.
    assert!(
        fake.accepted_ids().is_empty(),
        "the answer waited for the provider"
    );
    let unknown = app.post(
        "/api/auth/forgot",
        &json!({ "email": "nobody@example.com" }),
    );
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    fake.release();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fake.accepted_ids().is_empty() && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fake.received().len(), 1);
    assert_eq!(fake.to(0), "fanny.jackson@example.com");
    assert!(
        fake.text(0)
            .contains("https://portal.sunrise.example/portal/reset.html#token=")
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[test]
fn a_new_staff_members_password_is_emailed_or_shown_once_if_the_email_fails() {
    let fake = FakeMail::start(Kind::SendGrid, TOKEN).unwrap();
    let app = with_provider(&fake).start().unwrap();
    let admin = Staff::sign_in(&app, ADMIN);
    let add = |email: &str| {
        admin.send(
            "POST",
            "/api/staff",
            &json!({ "email": email, "display_name": "Sam New", "role": "case_manager" }),
        )
    };
    let emailed = add("sam.new@example.org");
    assert_eq!(emailed.status, 201, "{}", emailed.body);
    assert_eq!(emailed.json()["delivery"], "email");
    assert!(emailed.json().get("temporary_password").is_none());
    assert_eq!(fake.to(0), "sam.new@example.org");
    assert!(
        fake.text(0)
            .contains("https://portal.sunrise.example/staff/")
    );
    let first = app.post(
        "/api/auth/login",
        &json!({ "realm": "staff", "username": "sam.new@example.org", "password": fake.password(0) }),
    );
    assert_eq!(first.json()["status"], "password_change_required");

    fake.then(Act::InvalidAddress);
    let shown = add("robin.two@example.org");
    assert_eq!(shown.status, 201, "{}", shown.body);
    let body = shown.json();
    assert_eq!(body["delivery"], "display");
    assert!(
        body["mail_error"]
            .as_str()
            .unwrap()
            .contains("Does not contain a valid address.")
    );
    let temporary = body["temporary_password"].as_str().unwrap();
    let first = app.post(
        "/api/auth/login",
        &json!({ "realm": "staff", "username": "robin.two@example.org", "password": temporary }),
    );
    assert_eq!(first.json()["status"], "password_change_required");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[test]
fn a_replayed_webhook_call_changes_nothing() {
    let fake = FakeMail::start(Kind::Resend, TOKEN).unwrap();
    let app = with_provider(&fake).start().unwrap();
    let casey = Staff::sign_in(&app, CASEY);
    let jane = client_id(&app, "Jane");
    correct_email(&casey, jane, "jdoe123@hotmail.com");
    assert_eq!(reset(&casey, jane, "email", "replay-key-0001").status, 200);
    let message = fake.accepted_ids()[0].clone();
    let delivered = event(Kind::Resend, true, &message, None, "jdoe123@hotmail.com");
    let bounced = event(Kind::Resend, false, &message, None, "jdoe123@hotmail.com");
    let mail_events = |casey: &Staff| {
        casey.get(&format!("/api/clients/{jane}/history")).json()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"].as_str().is_some_and(|a| a.starts_with("mail_")))
            .count()
    };
    assert_eq!(
        webhook_call_as(&app, Kind::Resend, &delivered, true, "msg_once").status,
        204
    );
    assert_eq!(mail_events(&casey), 1);
    // The same call again, and a different body under the same message id: both replays.
    assert_eq!(
        webhook_call_as(&app, Kind::Resend, &delivered, true, "msg_once").status,
        204
    );
    assert_eq!(
        webhook_call_as(&app, Kind::Resend, &bounced, true, "msg_once").status,
        204
    );
    assert_eq!(mail_events(&casey), 1);
    assert_eq!(
        portal(&casey, jane)["last_reset"]["mail_status"],
        "delivered"
    );
}
