//! A stand-in for a mail provider's API on 127.0.0.1: it speaks Postmark's, SendGrid's or
//! Resend's request and response formats, checks the headers and JSON body Caseport sends
//! (anything off is recorded as a violation, and answered the way the provider would), keeps
//! every email, and fails on demand.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

/// Which provider to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Postmark,
    SendGrid,
    Resend,
}

impl Kind {
    /// The `mail_provider` value.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Postmark => "postmark",
            Kind::SendGrid => "sendgrid",
            Kind::Resend => "resend",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Kind::Postmark => "/email",
            Kind::SendGrid => "/v3/mail/send",
            Kind::Resend => "/emails",
        }
    }
}

/// What to do with the next email.
#[derive(Debug, Clone)]
pub enum Act {
    /// Answer with this status in the provider's error format.
    Fail(u16),
    /// 429 with `Retry-After`.
    RateLimited { retry_after: u64 },
    /// Refuse the recipient address, as the provider does.
    InvalidAddress,
    /// Take the email, then wait this long before accepting it.
    Slow(Duration),
    /// Take the email and answer nothing until [`FakeMail::release`] (at most a minute).
    Hold,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<Act>,
    received: Vec<Received>,
    violations: Vec<String>,
    accepted: Vec<String>,
}

/// The fake provider; it lives as long as the test process.
#[derive(Clone)]
pub struct FakeMail {
    pub kind: Kind,
    pub port: u16,
    pub token: String,
    state: Arc<Mutex<State>>,
    ids: Arc<AtomicUsize>,
    released: Arc<std::sync::atomic::AtomicBool>,
}

impl FakeMail {
    /// Starts a fake `kind` that accepts `token`.
    pub fn start(kind: Kind, token: &str) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let fake = Self {
            kind,
            port: listener.local_addr()?.port(),
            token: token.to_string(),
            state: Arc::default(),
            ids: Arc::default(),
            released: Arc::default(),
        };
        let server = fake.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let server = server.clone();
                thread::spawn(move || server.serve(stream));
            }
        });
        Ok(fake)
    }

    /// The `mail_api_url` to configure.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Queues what happens to the next email(s); afterwards every email is accepted.
    pub fn then(&self, act: Act) -> &Self {
        self.lock().script.push_back(act);
        self
    }

    /// Lets held emails ([`Act::Hold`]) be accepted.
    pub fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
    }

    /// Starts Reset and Send New of `client` on `server` with `cookie` and `key`; once its
    /// email has reached this provider, which holds its answer, kills the server, then lets
    /// the provider answer. The reset is left interrupted mid-send.
    pub fn kill_server_mid_send(
        &self,
        server: &Arc<crate::Server>,
        client: i64,
        cookie: &str,
        key: &str,
    ) {
        self.then(Act::Hold);
        let pending = {
            let server = server.clone();
            let (cookie, key) = (cookie.to_string(), key.to_string());
            thread::spawn(move || {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    server.call(
                        "POST",
                        &format!("/api/clients/{client}/portal-password/reset"),
                        Some(&json!({ "delivery": "email", "idempotency_key": key })),
                        &[("cookie", &cookie)],
                    )
                }));
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.received().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the email never reached the provider"
            );
            thread::sleep(Duration::from_millis(10));
        }
        server.kill();
        self.release();
        let _ = pending.join();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every request received, first first.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// The provider message ids of accepted emails.
    pub fn accepted_ids(&self) -> Vec<String> {
        self.lock().accepted.clone()
    }

    /// What Caseport sent that the real provider would not take.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// The text part of the `n`th email.
    pub fn text(&self, n: usize) -> String {
        let body = &self.received()[n].body;
        match self.kind {
            Kind::Postmark => body["TextBody"].as_str(),
            Kind::SendGrid => body["content"][0]["value"].as_str(),
            Kind::Resend => body["text"].as_str(),
        }
        .unwrap_or_default()
        .to_string()
    }

    /// The recipient of the `n`th email.
    pub fn to(&self, n: usize) -> String {
        let body = &self.received()[n].body;
        match self.kind {
            Kind::Postmark => body["To"].as_str(),
            Kind::SendGrid => body["personalizations"][0]["to"][0]["email"].as_str(),
            Kind::Resend => body["to"][0].as_str(),
        }
        .unwrap_or_default()
        .to_string()
    }

    /// The temporary password in the `n`th email (its own line of the text part).
    pub fn password(&self, n: usize) -> String {
        temporary_password_in(&self.text(n))
            .unwrap_or_else(|| panic!("no temporary password in {:?}", self.text(n)))
    }

    fn serve(&self, stream: TcpStream) {
        let Ok(read_half) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(read_half);
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.trim_end().split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut raw = vec![0; length];
        if reader.read_exact(&mut raw).is_err() {
            return;
        }
        let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        let received = Received {
            path: path.clone(),
            headers,
            body,
        };
        let problems = self.check(&method, &received);
        let act = {
            let mut state = self.lock();
            state.received.push(received);
            state.violations.extend(problems.iter().cloned());
            state.script.pop_front()
        };
        let (status, extra, body) = if !problems.is_empty() {
            self.refusal(&problems)
        } else {
            match act {
                Some(Act::Fail(status)) => self.error(status),
                Some(Act::RateLimited { retry_after }) => {
                    let (status, mut extra, body) = self.error(429);
                    extra.push(format!("retry-after: {retry_after}"));
                    (status, extra, body)
                }
                Some(Act::InvalidAddress) => self.invalid_address(),
                Some(Act::Slow(wait)) => {
                    thread::sleep(wait);
                    self.accept()
                }
                Some(Act::Hold) => {
                    let deadline = std::time::Instant::now() + Duration::from_secs(60);
                    while !self.released.load(Ordering::SeqCst)
                        && std::time::Instant::now() < deadline
                    {
                        thread::sleep(Duration::from_millis(10));
                    }
                    self.accept()
                }
                None => self.accept(),
            }
        };
        let mut out = stream;
        let mut head = format!(
            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
            body.len()
        );
        if !body.is_empty() {
            head.push_str("content-type: application/json; charset=utf-8\r\n");
        }
        for h in extra {
            head.push_str(&h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let _ = out.write_all(head.as_bytes());
        let _ = out.write_all(body.as_bytes());
    }

    fn accept(&self) -> (u16, Vec<String>, String) {
        let n = self.ids.fetch_add(1, Ordering::SeqCst) + 1;
        let id = format!("{n:08x}-e38e-4336-af7d-e6c392c2f817");
        self.lock().accepted.push(id.clone());
        match self.kind {
            Kind::Postmark => (
                200,
                vec![],
                json!({ "To": "x", "SubmittedAt": "2026-11-25T10:00:00.0000000-05:00", "MessageID": id, "ErrorCode": 0, "Message": "OK" }).to_string(),
            ),
            Kind::SendGrid => (202, vec![format!("x-message-id: {id}")], String::new()),
            Kind::Resend => (200, vec![], json!({ "id": id }).to_string()),
        }
    }

    fn error(&self, status: u16) -> (u16, Vec<String>, String) {
        let body = match (self.kind, status) {
            (_, 500..=599) => json!({ "message": "Internal Server Error" }),
            (Kind::Postmark, 429) => json!({ "ErrorCode": 429, "Message": "Rate limit exceeded." }),
            (Kind::Postmark, _) => {
                json!({ "ErrorCode": 10, "Message": "The Server Token you provided in the X-Postmark-Server-Token request header was invalid." })
            }
            (Kind::SendGrid, 429) => {
                json!({ "errors": [{ "field": null, "message": "too many requests" }] })
            }
            (Kind::SendGrid, _) => {
                json!({ "errors": [{ "field": null, "message": "The provided authorization grant is invalid, expired, or revoked" }] })
            }
            (Kind::Resend, 429) => {
                json!({ "statusCode": 429, "message": "Too many requests. You can only make 2 requests per second.", "name": "rate_limit_exceeded" })
            }
            (Kind::Resend, _) => {
                json!({ "statusCode": status, "message": "API key is invalid", "name": "validation_error" })
            }
        };
        (status, vec![], body.to_string())
    }

    fn invalid_address(&self) -> (u16, Vec<String>, String) {
        match self.kind {
            Kind::Postmark => (
                422,
                vec![],
                json!({ "ErrorCode": 300, "Message": "Invalid 'To' address: 'jdoe123@hotmail.com'." })
                    .to_string(),
            ),
            Kind::SendGrid => (
                400,
                vec![],
                json!({ "errors": [{ "message": "Does not contain a valid address.", "field": "personalizations.0.to.0.email", "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to" }] }).to_string(),
            ),
            Kind::Resend => (
                422,
                vec![],
                json!({ "statusCode": 422, "message": "Invalid `to` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.", "name": "validation_error" }).to_string(),
            ),
        }
    }

    fn refusal(&self, problems: &[String]) -> (u16, Vec<String>, String) {
        let unauthorised = problems.iter().any(|p| p.contains("token"));
        if unauthorised {
            return self.error(401);
        }
        let message = problems.join("; ");
        let body = match self.kind {
            Kind::Postmark => json!({ "ErrorCode": 402, "Message": message }),
            Kind::SendGrid => json!({ "errors": [{ "message": message, "field": null }] }),
            Kind::Resend => {
                json!({ "statusCode": 422, "message": message, "name": "validation_error" })
            }
        };
        (
            if self.kind == Kind::SendGrid {
                400
            } else {
                422
            },
            vec![],
            body.to_string(),
        )
    }

    /// What the real provider would refuse in this request.
    fn check(&self, method: &str, r: &Received) -> Vec<String> {
        let mut problems = Vec::new();
        let mut need = |ok: bool, what: &str| {
            if !ok {
                problems.push(what.to_string());
            }
        };
        need(method == "POST", "method must be POST");
        need(r.path == self.kind.path(), "wrong path");
        need(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "content-type must be application/json",
        );
        let s = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
        let b = &r.body;
        match self.kind {
            Kind::Postmark => {
                need(
                    r.header("x-postmark-server-token") == Some(self.token.as_str()),
                    "server token missing or wrong",
                );
                need(
                    r.header("accept") == Some("application/json"),
                    "accept must be application/json",
                );
                for field in ["From", "To", "Subject", "TextBody", "HtmlBody"] {
                    need(s(&b[field]), &format!("{field} is required"));
                }
            }
            Kind::SendGrid => {
                need(
                    r.header("authorization") == Some(format!("Bearer {}", self.token).as_str()),
                    "bearer token missing or wrong",
                );
                need(
                    s(&b["personalizations"][0]["to"][0]["email"]),
                    "personalizations[0].to[0].email is required",
                );
                need(s(&b["from"]["email"]), "from.email is required");
                need(s(&b["subject"]), "subject is required");
                need(
                    b["content"][0]["type"] == "text/plain" && s(&b["content"][0]["value"]),
                    "content must start with text/plain",
                );
                need(
                    b["content"][1]["type"] == "text/html",
                    "content[1] must be text/html",
                );
            }
            Kind::Resend => {
                need(
                    r.header("authorization") == Some(format!("Bearer {}", self.token).as_str()),
                    "bearer token missing or wrong",
                );
                need(s(&b["from"]), "from is required");
                need(
                    b["to"].as_array().is_some_and(|a| !a.is_empty()),
                    "to must be a list",
                );
                need(
                    s(&b["subject"]) && s(&b["text"]) && s(&b["html"]),
                    "subject, text and html are required",
                );
            }
        }
        problems
    }
}

/// The temporary password on its own line of an email's text part.
pub fn temporary_password_in(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("Temporary password: "))
        .map(str::to_string)
}
