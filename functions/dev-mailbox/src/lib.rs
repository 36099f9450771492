//! The `dev-mailbox` component: the local mail provider. It accepts mail in Postmark's
//! `POST /email` format (reached by service chaining, through the same outbound-HTTP code as
//! a real provider), keeps the newest messages in key-value, and shows them on a page.
//! Every path answers 404 unless `mail_provider = "dev-mailbox"`, and only this computer (or,
//! for `POST /email`, another component) gets an answer: the mailbox holds every captured
//! password.

// `#[http_component]` expands to the component's export glue, which is unsafe code.
#![allow(unsafe_code)]

use caseport_shared::api_error::{ApiError, Code};
use caseport_shared::local_only::{self, Caller, caller};
use serde::{Deserialize, Serialize};
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

/// How many messages are kept; older ones are dropped.
const KEEP: usize = 200;
const INDEX_KEY: &str = "caseport/dev-mailbox/index";

const PAGE: &str = include_str!("../assets/mailbox.html");
const SCRIPT: &str = include_str!("../assets/mailbox.js");

/// Postmark's single-email request body (the fields Caseport sends).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PostmarkEmail {
    from: String,
    to: String,
    subject: String,
    #[serde(default)]
    text_body: Option<String>,
    #[serde(default)]
    html_body: Option<String>,
}

/// A captured message, as `GET /dev/mailbox/api/messages` lists it.
#[derive(Serialize, Deserialize, Clone)]
struct Message {
    id: String,
    at: String,
    from: String,
    to: String,
    subject: String,
    text: String,
    html: String,
}

#[derive(Serialize)]
struct Messages {
    messages: Vec<Message>,
}

fn enabled() -> bool {
    spin_sdk::variables::get("mail_provider").is_ok_and(|p| p == "dev-mailbox")
}

#[http_component]
fn handle(req: Request) -> Response {
    if !enabled() {
        return caseport_edge::error(&ApiError::not_found());
    }
    // The path under /dev/mailbox. Routed requests and service-chained ones (whose
    // spin-path-info is the whole path, as in Spin) both carry it in the URL.
    let path = req.path();
    let info = path
        .strip_prefix("/dev/mailbox")
        .unwrap_or(path)
        .to_string();
    // The route and method first: what the mailbox has is no secret, whoever asks.
    match (req.method(), info.as_str()) {
        (Method::Get, "" | "/" | "/mailbox.js" | "/api/messages") | (Method::Post, "/email") => {}
        (_, "" | "/" | "/mailbox.js" | "/api/messages") => {
            return caseport_edge::error(&ApiError::method_not_allowed(&["GET"]));
        }
        (_, "/email") => return caseport_edge::error(&ApiError::method_not_allowed(&["POST"])),
        _ => return caseport_edge::error(&ApiError::not_found()),
    }
    let header = |name: &str| req.header(name).and_then(|v| v.as_str());
    let from = caller(
        header("spin-client-addr"),
        header("spin-full-url").and_then(local_only::authority),
    );
    let allowed = match info.as_str() {
        // Mail is handed over by the other components only.
        "/email" => from == Caller::Component,
        _ => from == Caller::ThisComputer,
    };
    if !allowed {
        eprintln!("dev-mailbox: refused a request that did not come from this computer");
        return caseport_edge::error(&ApiError::new(
            Code::LocalOnly,
            "The local mailbox answers only on the computer that runs Caseport, at http://127.0.0.1 or http://localhost.",
        ));
    }
    match (req.method(), info.as_str()) {
        (Method::Get, "" | "/") => caseport_edge::builder(200)
            .header("content-type", "text/html; charset=utf-8")
            .header("cache-control", "no-store")
            .body(PAGE)
            .build(),
        (Method::Get, "/mailbox.js") => caseport_edge::builder(200)
            .header("content-type", "text/javascript; charset=utf-8")
            .header("cache-control", "no-cache")
            .body(SCRIPT)
            .build(),
        (Method::Get, "/api/messages") => match list() {
            Ok(messages) => caseport_edge::json(200, &Messages { messages }),
            Err(e) => caseport_edge::error(&e),
        },
        _ => capture(&req),
    }
}

fn storage_error() -> ApiError {
    ApiError::new(
        Code::StorageUnavailable,
        "The local mailbox cannot reach its storage; try again.",
    )
}

fn list() -> Result<Vec<Message>, ApiError> {
    let store = Store::open_default().map_err(|_| storage_error())?;
    let ids: Vec<String> = store
        .get_json(INDEX_KEY)
        .map_err(|_| storage_error())?
        .unwrap_or_default();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Ok(Some(m)) =
            store.get_json::<Message>(&format!("caseport/dev-mailbox/message/{id}"))
        {
            out.push(m);
        }
    }
    Ok(out)
}

/// Answers as Postmark does: 200 with `MessageID`, or 422 with `ErrorCode` and `Message`.
fn capture(req: &Request) -> Response {
    let postmark_error = |code: u16, message: &str| {
        caseport_edge::json(
            422,
            &serde_json::json!({ "ErrorCode": code, "Message": message }),
        )
    };
    // As Postmark does: the server token must be the one configured (the components send
    // `mail_api_token`, or "local" when it is empty).
    let expected = caseport_shared::mail::local_mailbox_token(
        spin_sdk::variables::get("mail_api_token").ok().as_deref(),
    );
    let given = req
        .header("x-postmark-server-token")
        .and_then(|v| v.as_str());
    if given != Some(expected.as_str()) {
        return caseport_edge::json(
            401,
            &serde_json::json!({ "ErrorCode": 10, "Message": "The Server API token in the HTTP headers is not valid." }),
        );
    }
    let email: PostmarkEmail = match serde_json::from_slice(req.body()) {
        Ok(e) => e,
        Err(_) => return postmark_error(402, "Invalid JSON"),
    };
    if !email.to.contains('@') {
        return postmark_error(300, "Invalid 'To' address.");
    }
    let at = now();
    let id = format!("{}-{:08x}", at.replace([':', '-', '.'], ""), rand32());
    let message = Message {
        id: id.clone(),
        at: at.clone(),
        from: email.from,
        to: email.to.clone(),
        subject: email.subject,
        text: email.text_body.unwrap_or_default(),
        html: email.html_body.unwrap_or_default(),
    };
    let stored = (|| -> anyhow::Result<()> {
        let store = Store::open_default()?;
        store.set_json(format!("caseport/dev-mailbox/message/{id}"), &message)?;
        let mut ids: Vec<String> = store.get_json(INDEX_KEY)?.unwrap_or_default();
        ids.insert(0, id.clone());
        for old in ids.split_off(KEEP.min(ids.len())) {
            store.delete(&format!("caseport/dev-mailbox/message/{old}"))?;
        }
        store.set_json(INDEX_KEY, &ids)
    })();
    match stored {
        Ok(()) => caseport_edge::json(
            200,
            &serde_json::json!({
                "To": email.to,
                "SubmittedAt": at,
                "MessageID": id,
                "ErrorCode": 0,
                "Message": "OK"
            }),
        ),
        Err(_) => caseport_edge::json(
            500,
            &serde_json::json!({ "ErrorCode": 500, "Message": "The local mailbox could not store the message." }),
        ),
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

fn rand32() -> u32 {
    getrandom::u32().unwrap_or_default()
}
