//! Mail: the providers' HTTP APIs (Postmark, SendGrid, Resend, and the local dev-mailbox,
//! which speaks Postmark's), bounded retries with backoff, a failure's reason in plain words,
//! the two emails Caseport sends, and the providers' delivery webhooks.
//!
//! Pure rules: the HTTP exchange itself is the [`Transport`] port, implemented on wasi:http in
//! `functions/edge` and by a scripted fake in the tests below.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::domain::{Email, Password};

/// Where mail goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Postmark,
    SendGrid,
    Resend,
    /// The local capture component; Postmark's format, reached by service chaining.
    DevMailbox,
}

impl Provider {
    /// The `mail_provider` variable's value.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "postmark" => Some(Self::Postmark),
            "sendgrid" => Some(Self::SendGrid),
            "resend" => Some(Self::Resend),
            "dev-mailbox" => Some(Self::DevMailbox),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postmark => "postmark",
            Self::SendGrid => "sendgrid",
            Self::Resend => "resend",
            Self::DevMailbox => "dev-mailbox",
        }
    }

    /// The provider's API origin when `mail_api_url` is empty.
    fn default_url(self) -> &'static str {
        match self {
            Self::Postmark => "https://api.postmarkapp.com",
            Self::SendGrid => "https://api.sendgrid.com",
            Self::Resend => "https://api.resend.com",
            Self::DevMailbox => "http://dev-mailbox.spin.internal",
        }
    }

    /// The path of the send endpoint under the API origin.
    fn send_path(self) -> &'static str {
        match self {
            Self::Postmark => "/email",
            Self::SendGrid => "/v3/mail/send",
            Self::Resend => "/emails",
            Self::DevMailbox => "/dev/mailbox/email",
        }
    }

    /// The name people know the provider by.
    fn name(self) -> &'static str {
        match self {
            Self::Postmark => "Postmark",
            Self::SendGrid => "SendGrid",
            Self::Resend => "Resend",
            Self::DevMailbox => "the local mailbox",
        }
    }
}

/// The mail variables: `mail_provider`, `mail_api_url`, `mail_api_token` (secret),
/// `mail_from`, `mail_webhook_secret` (secret), `clinic_name` and `portal_url`.
pub struct MailSettings {
    pub provider: Provider,
    /// The API origin, such as `https://api.postmarkapp.com` (no trailing slash).
    pub api_url: String,
    pub api_token: Password,
    pub from: String,
    /// How long one attempt may wait for the provider's answer.
    pub timeout: Duration,
    /// Authenticates delivery webhooks; none means webhooks are refused.
    pub webhook_secret: Option<Password>,
    pub clinic_name: String,
    /// Where clients sign in, such as `https://portal.example.org` (no trailing slash).
    pub portal_url: String,
}

/// Why no email can be sent: no provider is configured. Said to staff and to the operator.
pub const NOT_CONFIGURED: &str = "Email is not set up on this Caseport: the operator must set the mail_provider variable (postmark, sendgrid or resend), with mail_api_url and mail_api_token.";

/// Whether mail is configured, as Client Information and the status answer show it.
#[derive(Debug, Serialize, PartialEq)]
pub struct MailStatus {
    pub configured: bool,
    /// `postmark`, `sendgrid`, `resend` or `dev-mailbox`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'static str>,
    /// What is wrong, for the operator (never a secret's value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl MailStatus {
    /// From the mail variables read whole: none configured, misconfigured, or ready.
    pub fn of(settings: &Result<Option<MailSettings>, String>) -> Self {
        match settings {
            Ok(Some(s)) => Self {
                configured: true,
                provider: Some(s.provider.as_str()),
                problem: None,
            },
            Ok(None) => Self {
                configured: false,
                provider: None,
                problem: Some(NOT_CONFIGURED.to_string()),
            },
            Err(why) => Self {
                configured: false,
                provider: None,
                problem: Some(format!("Email is misconfigured: {why}.")),
            },
        }
    }

    /// From `mail_provider` alone (for components not granted the other mail variables).
    pub fn of_provider(raw: Option<&str>) -> Self {
        match raw.map(str::trim).filter(|p| !p.is_empty()) {
            None => Self::of(&Ok(None)),
            Some(p) => match Provider::parse(p) {
                Some(provider) => Self {
                    configured: true,
                    provider: Some(provider.as_str()),
                    problem: None,
                },
                None => Self {
                    configured: false,
                    provider: None,
                    problem: Some(format!(
                        "Email is misconfigured: variable mail_provider = {p:?} must be postmark, sendgrid, resend or dev-mailbox."
                    )),
                },
            },
        }
    }
}

impl MailSettings {
    /// Reads the mail variables through `get`: `None` when `mail_provider` is empty (no email
    /// can be sent: nothing falls back to a local capture), an error naming the variable when
    /// a value is malformed. `timeout` is the general settings' `mail_timeout_seconds`.
    pub fn from_variables(
        get: impl Fn(&str) -> Option<String>,
        timeout: Duration,
    ) -> Result<Option<Self>, String> {
        let value = |name: &str| get(name).map(|v| v.trim().to_string()).unwrap_or_default();
        let raw_provider = value("mail_provider");
        if raw_provider.is_empty() {
            return Ok(None);
        }
        let provider = Provider::parse(&raw_provider).ok_or_else(|| {
            format!("variable mail_provider = {raw_provider:?} must be postmark, sendgrid, resend or dev-mailbox")
        })?;
        let api_url = match value("mail_api_url") {
            u if u.is_empty() => provider.default_url().to_string(),
            u => u.trim_end_matches('/').to_string(),
        };
        let host = api_url
            .strip_prefix("https://")
            .or_else(|| api_url.strip_prefix("http://"));
        if host.is_none_or(|h| h.is_empty() || h.contains('/')) {
            return Err(format!(
                "variable mail_api_url = {api_url:?} must be an origin such as https://api.postmarkapp.com (no path)"
            ));
        }
        if provider != Provider::DevMailbox && api_url.ends_with(".spin.internal") {
            return Err(format!(
                "variable mail_api_url = {api_url:?} is the local mailbox, but mail_provider is {}; set mail_api_url to {}",
                provider.as_str(),
                provider.default_url()
            ));
        }
        let api_token = value("mail_api_token");
        if api_token.is_empty() && provider != Provider::DevMailbox {
            return Err(format!(
                "variable mail_api_token is empty; {} needs the API token of the account",
                provider.name()
            ));
        }
        let from = match value("mail_from") {
            f if f.is_empty() => "Caseport <no-reply@caseport.localhost>".to_string(),
            f => f,
        };
        let portal_url = match value("portal_url") {
            u if u.is_empty() => "http://127.0.0.1:3000".to_string(),
            u => u.trim_end_matches('/').to_string(),
        };
        if !(portal_url.starts_with("https://") || portal_url.starts_with("http://")) {
            return Err(format!(
                "variable portal_url = {portal_url:?} must start with https:// (or http:// locally)"
            ));
        }
        Ok(Some(Self {
            provider,
            api_url,
            api_token: Password::new(if api_token.is_empty() {
                "local".to_string()
            } else {
                api_token
            }),
            from,
            timeout,
            webhook_secret: Some(value("mail_webhook_secret"))
                .filter(|s| !s.is_empty())
                .map(Password::new),
            clinic_name: match value("clinic_name") {
                n if n.is_empty() => "Caseport".to_string(),
                n => n,
            },
            portal_url,
        }))
    }

    /// The portal's sign-in page.
    pub fn sign_in_url(&self) -> String {
        format!("{}/portal/", self.portal_url)
    }

    /// The host part of the API origin, for messages to the operator.
    fn api_host(&self) -> &str {
        self.api_url
            .split_once("://")
            .map_or(self.api_url.as_str(), |(_, h)| h)
    }
}

/// One email to send. The text and HTML may carry a password: they are wiped when dropped
/// and never stored.
pub struct Message {
    pub to: Email,
    pub subject: String,
    pub text: Zeroizing<String>,
    pub html: Zeroizing<String>,
    /// Caseport's id of the delivery, sent along as metadata so webhooks find it.
    pub delivery_id: String,
}

/// An HTTP request to a provider. Its headers carry the API token, so it has no `Debug`.
pub struct OutRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Zeroizing<Vec<u8>>,
}

/// What the provider answered.
#[derive(Debug, Clone)]
pub struct InResponse {
    pub status: u16,
    /// `Retry-After` in seconds, if the provider sent one.
    pub retry_after: Option<u64>,
    /// SendGrid's `X-Message-Id`.
    pub message_id_header: Option<String>,
    pub body: Vec<u8>,
}

/// Why no answer came.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportError {
    /// The provider did not answer within the timeout; the mail may or may not have gone.
    Timeout,
    /// The request did not reach the provider (refused, unknown host, not allowed).
    Unreachable(String),
}

/// Sends an HTTP request and waits; implemented on wasi:http by the components.
pub trait Transport {
    fn send(&self, request: &OutRequest, timeout: Duration) -> Result<InResponse, TransportError>;
    fn sleep(&self, duration: Duration);
}

/// The request that sends `message` through the configured provider.
pub fn build(settings: &MailSettings, message: &Message) -> OutRequest {
    let provider = settings.provider;
    let url = format!("{}{}", settings.api_url, provider.send_path());
    let token = settings.api_token.expose().to_string();
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("accept", "application/json".to_string()),
    ];
    let body = match provider {
        Provider::Postmark | Provider::DevMailbox => {
            headers.push(("x-postmark-server-token", token));
            json!({
                "From": settings.from,
                "To": message.to.as_ref(),
                "Subject": message.subject,
                "TextBody": message.text.as_str(),
                "HtmlBody": message.html.as_str(),
                "MessageStream": "outbound",
                "TrackOpens": false,
                "TrackLinks": "None",
                "Metadata": { "delivery_id": message.delivery_id },
            })
        }
        Provider::SendGrid => {
            headers.push(("authorization", format!("Bearer {token}")));
            let (name, email) = split_from(&settings.from);
            let mut from = json!({ "email": email });
            if let Some(name) = name {
                from["name"] = json!(name);
            }
            json!({
                "personalizations": [{
                    "to": [{ "email": message.to.as_ref() }],
                    "custom_args": { "delivery_id": message.delivery_id },
                }],
                "from": from,
                "subject": message.subject,
                "content": [
                    { "type": "text/plain", "value": message.text.as_str() },
                    { "type": "text/html", "value": message.html.as_str() },
                ],
                "tracking_settings": {
                    "click_tracking": { "enable": false },
                    "open_tracking": { "enable": false },
                },
            })
        }
        Provider::Resend => {
            headers.push(("authorization", format!("Bearer {token}")));
            headers.push(("idempotency-key", message.delivery_id.clone()));
            json!({
                "from": settings.from,
                "to": [message.to.as_ref()],
                "subject": message.subject,
                "text": message.text.as_str(),
                "html": message.html.as_str(),
                "tags": [{ "name": "delivery_id", "value": message.delivery_id }],
            })
        }
    };
    OutRequest {
        url,
        headers,
        body: Zeroizing::new(body.to_string().into_bytes()),
    }
}

/// `Name <address>` → (Some(Name), address); a bare address → (None, address).
fn split_from(from: &str) -> (Option<&str>, &str) {
    match (from.find('<'), from.rfind('>')) {
        (Some(open), Some(close)) if open < close => {
            let name = from[..open].trim().trim_matches('"').trim();
            (
                (!name.is_empty()).then_some(name),
                from[open + 1..close].trim(),
            )
        }
        _ => (None, from.trim()),
    }
}

/// How one answer of the provider is taken.
#[derive(Debug, PartialEq)]
enum Answer {
    Accepted {
        message_id: String,
    },
    /// Worth another attempt (429, 5xx).
    Retry {
        reason: String,
    },
    /// Final (4xx): the reason in plain words.
    Rejected {
        reason: String,
    },
}

/// The provider's own error text, from its JSON error body.
fn provider_message(provider: Provider, body: &[u8]) -> Option<String> {
    let v: Json = serde_json::from_slice(body).ok()?;
    let text = match provider {
        Provider::Postmark | Provider::DevMailbox => v.get("Message")?.as_str()?.to_string(),
        Provider::SendGrid => v
            .get("errors")?
            .as_array()?
            .iter()
            .filter_map(|e| e.get("message").and_then(Json::as_str))
            .collect::<Vec<_>>()
            .join("; "),
        Provider::Resend => v.get("message")?.as_str()?.to_string(),
    };
    let text: String = text.chars().take(300).collect();
    (!text.trim().is_empty()).then_some(text)
}

fn interpret(settings: &MailSettings, response: &InResponse) -> Answer {
    let provider = settings.provider;
    let name = provider.name();
    let said = provider_message(provider, &response.body);
    let quoted = said
        .as_deref()
        .map(|s| format!(" {name} said: \u{201c}{s}\u{201d}"))
        .unwrap_or_default();
    match response.status {
        200..=299 => {
            let v: Json = serde_json::from_slice(&response.body).unwrap_or(Json::Null);
            let id = match provider {
                Provider::Postmark | Provider::DevMailbox => v
                    .get("MessageID")
                    .and_then(Json::as_str)
                    .map(str::to_string),
                Provider::SendGrid => response.message_id_header.clone(),
                Provider::Resend => v.get("id").and_then(Json::as_str).map(str::to_string),
            };
            match id {
                Some(message_id) if !message_id.is_empty() => Answer::Accepted { message_id },
                // Accepted, but without the id the answer must carry: treat as a fault of
                // the provider, not as sent.
                _ => Answer::Retry {
                    reason: format!("{name} answered without a message id."),
                },
            }
        }
        401 | 403 => Answer::Rejected {
            reason: format!(
                "{name} refused Caseport's credentials; the operator must check mail_api_token and mail_from.{quoted}"
            ),
        },
        429 => Answer::Retry {
            reason: format!("{name} is busy (too many requests); try again in a minute."),
        },
        500..=599 => Answer::Retry {
            reason: format!(
                "{name} had a problem on its side (HTTP {}); try again in a few minutes.{quoted}",
                response.status
            ),
        },
        status => {
            let postmark_code = serde_json::from_slice::<Json>(&response.body)
                .ok()
                .and_then(|v| v.get("ErrorCode").and_then(Json::as_i64));
            let reason = match (provider, postmark_code) {
                (Provider::Postmark | Provider::DevMailbox, Some(300)) => format!(
                    "{name} says the email address is not valid; correct it and send again.{quoted}"
                ),
                (Provider::Postmark | Provider::DevMailbox, Some(406)) => format!(
                    "{name} will not send to this address because earlier mail to it bounced or was marked as spam; check the address with the client.{quoted}"
                ),
                _ => format!("{name} refused the email (HTTP {status}).{quoted}"),
            };
            Answer::Rejected { reason }
        }
    }
}

/// A sent email.
#[derive(Debug, PartialEq)]
pub struct Sent {
    pub message_id: String,
    pub attempts: u32,
}

/// Why an email was not sent, for the case manager.
#[derive(Debug, PartialEq)]
pub struct Failure {
    pub reason: String,
    pub attempts: u32,
    /// The provider may have taken the email after all (it did not answer in time).
    pub uncertain: bool,
}

/// The most attempts of one email.
pub const MAX_ATTEMPTS: u32 = 3;
/// The first pause between attempts; it doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(400);
/// The longest `Retry-After` honoured; a longer one ends the attempts.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(4);

/// Sends `message`, retrying 429, 5xx and unreachable providers at most [`MAX_ATTEMPTS`]
/// times with doubling pauses. A timeout is not retried: the provider may have the email.
pub fn deliver(
    transport: &dyn Transport,
    settings: &MailSettings,
    message: &Message,
) -> Result<Sent, Failure> {
    let request = build(settings, message);
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (reason, retry_after) = match transport.send(&request, settings.timeout) {
            Ok(response) => match interpret(settings, &response) {
                Answer::Accepted { message_id } => {
                    return Ok(Sent {
                        message_id,
                        attempts: attempt,
                    });
                }
                Answer::Rejected { reason } => {
                    return Err(Failure {
                        reason,
                        attempts: attempt,
                        uncertain: false,
                    });
                }
                Answer::Retry { reason } => (reason, response.retry_after),
            },
            Err(TransportError::Timeout) => {
                return Err(Failure {
                    reason: format!(
                        "{} did not answer within {} seconds. If an email still arrives, its password will not work; send a new one.",
                        settings.provider.name(),
                        settings.timeout.as_secs()
                    ),
                    attempts: attempt,
                    uncertain: true,
                });
            }
            Err(TransportError::Unreachable(why)) => (
                format!(
                    "Caseport could not reach {} at {} ({why}); the operator must check mail_api_url and the network.",
                    settings.provider.name(),
                    settings.api_host()
                ),
                None,
            ),
        };
        let pause = match retry_after.map(Duration::from_secs) {
            Some(wait) if wait > MAX_RETRY_AFTER => None,
            Some(wait) => Some(wait.max(backoff)),
            None => Some(backoff),
        };
        match pause {
            Some(pause) if attempt < MAX_ATTEMPTS => {
                transport.sleep(pause);
                backoff *= 2;
            }
            _ => {
                return Err(Failure {
                    reason: if attempt > 1 {
                        format!("{reason} (tried {attempt} times)")
                    } else {
                        reason
                    },
                    attempts: attempt,
                    uncertain: false,
                });
            }
        }
    }
}

/// `j***@hotmail.com`: enough for the case manager to recognise the address.
pub fn masked(email: &Email) -> String {
    let (local, domain) = email.as_ref().split_once('@').unwrap_or(("", ""));
    let first: String = local.chars().take(1).collect();
    format!("{first}***@{domain}")
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An instant as a person reads it in the clinic's time zone.
pub fn human_time(at: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    at.to_zoned(tz.clone())
        .strftime("%A, %B %-d, %Y at %-I:%M %p %Z")
        .to_string()
}

fn wrap_html(settings: &MailSettings, paragraphs: &[String]) -> Zeroizing<String> {
    let mut html = String::from(
        "<!doctype html><html><body style=\"font-family:Arial,Helvetica,sans-serif;color:#1b1b1b;line-height:1.5\">",
    );
    html.push_str(&format!(
        "<h1 style=\"font-size:20px\">{}</h1>",
        html_escape(&settings.clinic_name)
    ));
    for p in paragraphs {
        html.push_str(p);
    }
    html.push_str("</body></html>");
    Zeroizing::new(html)
}

/// The email with a new temporary password. It names the clinic, the portal, the username,
/// the password on a line of its own and its expiry — and nothing else about the client.
pub fn temporary_password_email(
    settings: &MailSettings,
    to: &Email,
    username: &str,
    password: &Password,
    expires: &str,
    delivery_id: &str,
) -> Message {
    let clinic = &settings.clinic_name;
    let url = settings.sign_in_url();
    let text = format!(
        "Hello,\n\n{clinic} has set a new temporary password for your client portal account.\n\n\
         Sign in at: {url}\nUsername: {username}\nTemporary password: {}\n\n\
         It works until {expires}. When you sign in, you will choose a new password of your own.\n\n\
         If you did not ask for this, contact {clinic}. Nobody from {clinic} will ask you for your password.\n",
        password.expose()
    );
    let e = html_escape;
    let html = wrap_html(
        settings,
        &[
            format!(
                "<p>Hello,</p><p>{} has set a new temporary password for your client portal account.</p>",
                e(clinic)
            ),
            format!(
                "<p>Sign in at: <a href=\"{0}\">{0}</a><br>Username: <strong>{1}</strong><br>Temporary password: <strong style=\"font-family:monospace;font-size:18px\">{2}</strong></p>",
                e(&url),
                e(username),
                e(password.expose())
            ),
            format!(
                "<p>It works until {}. When you sign in, you will choose a new password of your own.</p><p>If you did not ask for this, contact {}. Nobody from {} will ask you for your password.</p>",
                e(expires),
                e(clinic),
                e(clinic)
            ),
        ],
    );
    Message {
        to: to.clone(),
        subject: format!("Your new temporary password for {clinic}"),
        text: Zeroizing::new(text),
        html,
        delivery_id: delivery_id.to_string(),
    }
}

/// The email that gives a new staff member their temporary password for the staff console.
pub fn staff_welcome_email(
    settings: &MailSettings,
    to: &Email,
    name: &str,
    password: &Password,
    expires: &str,
    delivery_id: &str,
) -> Message {
    let clinic = &settings.clinic_name;
    let url = format!("{}/staff/", settings.portal_url);
    let text = format!(
        "Hello {name},\n\nAn administrator of {clinic} has given you a Caseport staff account.\n\n\
         Sign in at: {url}\nUsername: {to}\nTemporary password: {}\n\n\
         It works until {expires}. When you sign in, you will choose a password of your own.\n",
        password.expose(),
        to = to.as_ref()
    );
    let e = html_escape;
    let html = wrap_html(
        settings,
        &[
            format!(
                "<p>Hello {},</p><p>An administrator of {} has given you a Caseport staff account.</p>",
                e(name),
                e(clinic)
            ),
            format!(
                "<p>Sign in at: <a href=\"{0}\">{0}</a><br>Username: <strong>{1}</strong><br>Temporary password: <strong style=\"font-family:monospace;font-size:18px\">{2}</strong></p>",
                e(&url),
                e(to.as_ref()),
                e(password.expose())
            ),
            format!(
                "<p>It works until {}. When you sign in, you will choose a password of your own.</p>",
                e(expires)
            ),
        ],
    );
    Message {
        to: to.clone(),
        subject: format!("Your Caseport staff account at {clinic}"),
        text: Zeroizing::new(text),
        html,
        delivery_id: delivery_id.to_string(),
    }
}

/// The email with a link to choose a new password (forgot password).
pub fn reset_link_email(
    settings: &MailSettings,
    to: &Email,
    username: &str,
    token: &str,
    minutes: i64,
    delivery_id: &str,
) -> Message {
    let clinic = &settings.clinic_name;
    // The token travels in the fragment, which browsers never send to a server.
    let link = format!("{}/portal/reset.html#token={token}", settings.portal_url);
    let text = format!(
        "Hello,\n\nSomeone asked to reset the password of the {clinic} client portal account {username}.\n\n\
         Choose a new password here (the link works once, for {minutes} minutes):\n{link}\n\n\
         If you did not ask for this, ignore this email: your password has not changed.\n"
    );
    let e = html_escape;
    let html = wrap_html(
        settings,
        &[
            format!(
                "<p>Hello,</p><p>Someone asked to reset the password of the {} client portal account <strong>{}</strong>.</p>",
                e(clinic),
                e(username)
            ),
            format!(
                "<p><a href=\"{0}\">Choose a new password</a> (the link works once, for {minutes} minutes).</p><p>If the button does not work, copy this address into your browser:<br>{0}</p>",
                e(&link)
            ),
            "<p>If you did not ask for this, ignore this email: your password has not changed.</p>"
                .to_string(),
        ],
    );
    Message {
        to: to.clone(),
        subject: format!("Reset your {clinic} portal password"),
        text: Zeroizing::new(text),
        html,
        delivery_id: delivery_id.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Delivery webhooks

/// What a delivery event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    Delivered,
    Bounced,
    /// The provider gave up without a bounce (SendGrid's `dropped`, Resend's `failed`).
    Failed,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Bounced => "bounced",
            Self::Failed => "failed",
        }
    }
}

/// One delivery event of a provider's webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub status: EventStatus,
    pub message_id: Option<String>,
    pub delivery_id: Option<String>,
    /// The provider's explanation, for the case manager.
    pub detail: Option<String>,
    /// The provider's name of the event, kept in the delivery's events.
    pub kind: String,
    pub at: Option<String>,
}

fn text_of(v: &Json, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Json::as_str)
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

/// The events of a webhook body that move a delivery (opens, clicks and the like are
/// skipped). A body that is not the provider's format is an error.
pub fn parse_webhook(provider: Provider, body: &[u8]) -> Result<Vec<Event>, String> {
    let v: Json = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let mut out = Vec::new();
    match provider {
        Provider::Postmark | Provider::DevMailbox => {
            let record = text_of(&v, "RecordType").ok_or("no RecordType")?;
            let status = match record.as_str() {
                "Delivery" => EventStatus::Delivered,
                "Bounce" => EventStatus::Bounced,
                _ => return Ok(out),
            };
            let detail = match status {
                EventStatus::Bounced => Some(
                    [text_of(&v, "Description"), text_of(&v, "Details")]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                _ => None,
            };
            out.push(Event {
                status,
                message_id: text_of(&v, "MessageID"),
                delivery_id: v.get("Metadata").and_then(|m| text_of(m, "delivery_id")),
                detail,
                kind: record,
                at: text_of(&v, "DeliveredAt").or_else(|| text_of(&v, "BouncedAt")),
            });
        }
        Provider::SendGrid => {
            let events = v
                .as_array()
                .ok_or("SendGrid posts a JSON array of events")?;
            for e in events {
                let kind = text_of(e, "event").ok_or("an event without `event`")?;
                let status = match kind.as_str() {
                    "delivered" => EventStatus::Delivered,
                    "bounce" => EventStatus::Bounced,
                    "dropped" => EventStatus::Failed,
                    _ => continue,
                };
                out.push(Event {
                    status,
                    // sg_message_id is the X-Message-Id, then a dot and SendGrid's suffix.
                    message_id: text_of(e, "sg_message_id")
                        .map(|id| id.split('.').next().unwrap_or_default().to_string()),
                    delivery_id: text_of(e, "delivery_id"),
                    detail: text_of(e, "reason").or_else(|| text_of(e, "response")),
                    kind,
                    at: e
                        .get("timestamp")
                        .and_then(Json::as_i64)
                        .and_then(|t| jiff::Timestamp::from_second(t).ok())
                        .map(|t| t.to_string()),
                });
            }
        }
        Provider::Resend => {
            let kind = text_of(&v, "type").ok_or("no type")?;
            let status = match kind.as_str() {
                "email.delivered" => EventStatus::Delivered,
                "email.bounced" => EventStatus::Bounced,
                "email.failed" => EventStatus::Failed,
                _ => return Ok(out),
            };
            let data = v.get("data").ok_or("no data")?;
            let delivery_id = match data.get("tags") {
                Some(Json::Object(tags)) => tags.get("delivery_id").and_then(Json::as_str),
                Some(Json::Array(tags)) => tags
                    .iter()
                    .find(|t| t.get("name").and_then(Json::as_str) == Some("delivery_id"))
                    .and_then(|t| t.get("value").and_then(Json::as_str)),
                _ => None,
            }
            .map(str::to_string);
            out.push(Event {
                status,
                message_id: text_of(data, "email_id"),
                delivery_id,
                detail: data
                    .get("bounce")
                    .and_then(|b| text_of(b, "message"))
                    .or_else(|| data.get("failed").and_then(|f| text_of(f, "reason"))),
                kind,
                at: text_of(&v, "created_at"),
            });
        }
    }
    Ok(out)
}

/// Equal without telling by timing how much matched.
fn same_secret(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// How long a Resend (Svix) signature stays acceptable, against replays.
const SIGNATURE_TOLERANCE_SECONDS: i64 = 5 * 60;

/// Whether a webhook request really comes from the provider: HTTP Basic credentials whose
/// password is `mail_webhook_secret` for Postmark and SendGrid (both put them in the webhook
/// URL), Svix's HMAC-SHA256 signature for Resend. `header` looks a request header up.
pub fn webhook_authentic(
    settings: &MailSettings,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    now: i64,
) -> bool {
    let Some(secret) = &settings.webhook_secret else {
        return false;
    };
    match settings.provider {
        Provider::Postmark | Provider::SendGrid | Provider::DevMailbox => {
            let Some(encoded) = header("authorization")
                .and_then(|h| h.strip_prefix("Basic ").map(|s| s.trim().to_string()))
            else {
                return false;
            };
            let Some(decoded) = STANDARD
                .decode(encoded)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .map(Zeroizing::new)
            else {
                return false;
            };
            decoded
                .split_once(':')
                .is_some_and(|(_, password)| same_secret(password, secret.expose()))
        }
        Provider::Resend => {
            let (Some(id), Some(timestamp), Some(signatures)) = (
                header("svix-id"),
                header("svix-timestamp"),
                header("svix-signature"),
            ) else {
                return false;
            };
            let Ok(sent_at) = timestamp.trim().parse::<i64>() else {
                return false;
            };
            if (now - sent_at).abs() > SIGNATURE_TOLERANCE_SECONDS {
                return false;
            }
            let key_b64 = secret.expose().trim_start_matches("whsec_");
            let Ok(key) = STANDARD.decode(key_b64).map(Zeroizing::new) else {
                return false;
            };
            signatures.split_whitespace().any(|sig| {
                let Some(b64) = sig.strip_prefix("v1,") else {
                    return false;
                };
                let Ok(given) = STANDARD.decode(b64) else {
                    return false;
                };
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
                    return false;
                };
                mac.update(id.as_bytes());
                mac.update(b".");
                mac.update(timestamp.trim().as_bytes());
                mac.update(b".");
                mac.update(body);
                mac.verify_slice(&given).is_ok()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn settings(provider: Provider) -> MailSettings {
        MailSettings::from_variables(
            |n| match n {
                "mail_provider" => Some(provider.as_str().into()),
                "mail_api_token" => Some("server-token".into()),
                "mail_from" => Some("Sunrise Clinic <portal@sunrise.example>".into()),
                "mail_webhook_secret" => Some("hook-secret".into()),
                _ => None,
            },
            Duration::from_secs(10),
        )
        .unwrap()
        .unwrap()
    }

    fn message() -> Message {
        temporary_password_email(
            &settings(Provider::Postmark),
            &Email::parse("jdoe123@hotmail.com").unwrap(),
            "jdoe123@hotmail.com",
            &Password::new("ABC234-DEF567-GHJ89K".into()),
            "Saturday",
            "d-1",
        )
    }

    /// Answers from a script and records what was sent and how long it slept.
    struct Scripted {
        answers: RefCell<Vec<Result<InResponse, TransportError>>>,
        sent: RefCell<u32>,
        slept: RefCell<Vec<Duration>>,
    }

    impl Scripted {
        fn new(answers: Vec<Result<InResponse, TransportError>>) -> Self {
            Self {
                answers: RefCell::new(answers),
                sent: RefCell::new(0),
                slept: RefCell::new(Vec::new()),
            }
        }
    }

    impl Transport for Scripted {
        fn send(&self, _: &OutRequest, _: Duration) -> Result<InResponse, TransportError> {
            *self.sent.borrow_mut() += 1;
            self.answers.borrow_mut().remove(0)
        }
        fn sleep(&self, d: Duration) {
            self.slept.borrow_mut().push(d);
        }
    }

    fn answer(status: u16, body: &str) -> Result<InResponse, TransportError> {
        Ok(InResponse {
            status,
            retry_after: None,
            message_id_header: None,
            body: body.as_bytes().to_vec(),
        })
    }

    const POSTMARK_OK: &str = r#"{"To":"jdoe123@hotmail.com","SubmittedAt":"2026-11-25T10:00:00Z","MessageID":"b7bc2f4a-e38e-4336-af7d-e6c392c2f817","ErrorCode":0,"Message":"OK"}"#;

    #[test]
    fn each_provider_gets_its_own_request() {
        let m = message();
        let p = build(&settings(Provider::Postmark), &m);
        assert_eq!(p.url, "https://api.postmarkapp.com/email");
        assert!(
            p.headers
                .contains(&("x-postmark-server-token", "server-token".into()))
        );
        let body: Json = serde_json::from_slice(&p.body).unwrap();
        assert_eq!(body["To"], "jdoe123@hotmail.com");
        assert_eq!(body["Metadata"]["delivery_id"], "d-1");

        let s = build(&settings(Provider::SendGrid), &m);
        assert_eq!(s.url, "https://api.sendgrid.com/v3/mail/send");
        assert!(
            s.headers
                .contains(&("authorization", "Bearer server-token".into()))
        );
        let body: Json = serde_json::from_slice(&s.body).unwrap();
        assert_eq!(
            body["from"],
            json!({"email": "portal@sunrise.example", "name": "Sunrise Clinic"})
        );
        assert_eq!(
            body["personalizations"][0]["to"][0]["email"],
            "jdoe123@hotmail.com"
        );
        assert_eq!(body["content"][0]["type"], "text/plain");

        let r = build(&settings(Provider::Resend), &m);
        assert_eq!(r.url, "https://api.resend.com/emails");
        assert!(r.headers.contains(&("idempotency-key", "d-1".into())));
        let body: Json = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["to"], json!(["jdoe123@hotmail.com"]));
    }

    #[test]
    fn the_email_has_the_password_on_its_own_line_and_escapes_html() {
        let mut s = settings(Provider::Postmark);
        s.clinic_name = "Smith & <Sons>".into();
        let m = temporary_password_email(
            &s,
            &Email::parse("a@b.example").unwrap(),
            "a@b.example",
            &Password::new("ABC234-DEF567-GHJ89K".into()),
            "Saturday",
            "d",
        );
        assert!(
            m.text
                .lines()
                .any(|l| l == "Temporary password: ABC234-DEF567-GHJ89K")
        );
        assert!(m.html.contains("Smith &amp; &lt;Sons&gt;"));
        assert!(!m.html.contains("<Sons>"));
    }

    #[test]
    fn a_busy_provider_is_retried_with_growing_pauses() {
        let t = Scripted::new(vec![
            answer(429, "{}"),
            answer(500, "{}"),
            answer(200, POSTMARK_OK),
        ]);
        let sent = deliver(&t, &settings(Provider::Postmark), &message()).unwrap();
        assert_eq!(sent.attempts, 3);
        assert_eq!(*t.slept.borrow(), vec![FIRST_BACKOFF, FIRST_BACKOFF * 2]);
    }

    #[test]
    fn retries_stop_at_the_bound_with_the_reason() {
        let t = Scripted::new(vec![
            answer(503, "{}"),
            answer(503, "{}"),
            answer(503, "{}"),
            answer(200, POSTMARK_OK),
        ]);
        let failure = deliver(&t, &settings(Provider::Postmark), &message()).unwrap_err();
        assert_eq!(
            (failure.attempts, *t.sent.borrow()),
            (MAX_ATTEMPTS, MAX_ATTEMPTS)
        );
        assert!(failure.reason.contains("HTTP 503"), "{}", failure.reason);
    }

    #[test]
    fn a_long_retry_after_ends_the_attempts() {
        let t = Scripted::new(vec![Ok(InResponse {
            status: 429,
            retry_after: Some(3600),
            message_id_header: None,
            body: vec![],
        })]);
        let failure = deliver(&t, &settings(Provider::Resend), &message()).unwrap_err();
        assert_eq!(failure.attempts, 1);
        assert!(failure.reason.contains("busy"));
    }

    #[test]
    fn rejections_and_timeouts_are_not_retried() {
        let t = Scripted::new(vec![answer(
            422,
            r#"{"ErrorCode":300,"Message":"Invalid 'To' address: 'x'."}"#,
        )]);
        let failure = deliver(&t, &settings(Provider::Postmark), &message()).unwrap_err();
        assert!(failure.reason.contains("not valid") && failure.reason.contains("Invalid 'To'"));
        let t = Scripted::new(vec![Err(TransportError::Timeout)]);
        let failure = deliver(&t, &settings(Provider::SendGrid), &message()).unwrap_err();
        assert!(failure.uncertain && failure.attempts == 1);
        let t = Scripted::new(vec![answer(
            400,
            r#"{"errors":[{"message":"Does not contain a valid address.","field":"personalizations.0.to.0.email"}]}"#,
        )]);
        let failure = deliver(&t, &settings(Provider::SendGrid), &message()).unwrap_err();
        assert!(failure.reason.contains("Does not contain a valid address."));
    }

    #[test]
    fn settings_refuse_what_cannot_work() {
        let bad = |name: &'static str, value: &'static str| {
            MailSettings::from_variables(
                move |n| match n {
                    n if n == name => Some(value.into()),
                    "mail_provider" => Some("postmark".into()),
                    "mail_api_token" => Some("t".into()),
                    _ => None,
                },
                Duration::from_secs(10),
            )
            .err()
            .unwrap_or_default()
        };
        assert!(bad("mail_provider", "mailchimp").contains("mail_provider"));
        assert!(bad("mail_api_token", "").contains("mail_api_token"));
        assert!(bad("mail_api_url", "ftp://x").contains("mail_api_url"));
        assert!(bad("mail_api_url", "https://x/email").contains("mail_api_url"));
        assert!(
            bad("mail_api_url", "http://dev-mailbox.spin.internal")
                .contains("https://api.postmarkapp.com")
        );
        assert!(bad("portal_url", "portal.example").contains("portal_url"));
    }

    #[test]
    fn no_provider_means_no_mail_not_the_local_mailbox() {
        // spin.toml's defaults: mail_api_url points at the local mailbox, mail_provider is empty.
        let defaults =
            |n: &str| (n == "mail_api_url").then(|| "http://dev-mailbox.spin.internal".to_string());
        let read = MailSettings::from_variables(defaults, Duration::from_secs(10));
        assert!(matches!(read, Ok(None)));
        let status = MailStatus::of(&read);
        assert!(!status.configured);
        assert!(status.problem.unwrap_or_default().contains("mail_provider"));
        assert_eq!(
            MailStatus::of_provider(Some(" ")),
            MailStatus::of(&Ok(None))
        );
        assert_eq!(
            MailStatus::of_provider(Some("postmark")).provider,
            Some("postmark")
        );
        assert!(!MailStatus::of_provider(Some("smtp")).configured);
    }

    #[test]
    fn webhooks_of_each_provider_are_understood() {
        let pm = parse_webhook(
            Provider::Postmark,
            br#"{"RecordType":"Bounce","Type":"HardBounce","MessageID":"m1","Description":"The server was unable to deliver your message (ex: unknown user, mailbox not found).","Details":"smtp;550 5.1.1 unknown","Email":"a@b.c","BouncedAt":"2026-11-25T10:00:00Z","Metadata":{"delivery_id":"d1"}}"#,
        )
        .unwrap();
        assert_eq!(pm[0].status, EventStatus::Bounced);
        assert_eq!(pm[0].delivery_id.as_deref(), Some("d1"));
        let sg = parse_webhook(
            Provider::SendGrid,
            br#"[{"email":"a@b.c","timestamp":1764064800,"event":"processed","sg_message_id":"X1.filter"},{"email":"a@b.c","timestamp":1764064800,"event":"delivered","sg_message_id":"X1.filterdrecv","delivery_id":"d2","response":"250 OK"}]"#,
        )
        .unwrap();
        assert_eq!(sg.len(), 1);
        assert_eq!(sg[0].message_id.as_deref(), Some("X1"));
        let rs = parse_webhook(
            Provider::Resend,
            br#"{"type":"email.delivered","created_at":"2026-11-25T10:00:00.000Z","data":{"email_id":"e1","tags":{"delivery_id":"d3"}}}"#,
        )
        .unwrap();
        assert_eq!(
            (rs[0].status, rs[0].delivery_id.as_deref()),
            (EventStatus::Delivered, Some("d3"))
        );
        assert!(parse_webhook(Provider::SendGrid, b"{}").is_err());
    }

    #[test]
    fn webhook_signatures_are_checked() {
        let s = settings(Provider::Postmark);
        let basic = format!("Basic {}", STANDARD.encode("caseport:hook-secret"));
        assert!(webhook_authentic(
            &s,
            &|h| (h == "authorization").then(|| basic.clone()),
            b"{}",
            0
        ));
        let wrong = format!("Basic {}", STANDARD.encode("caseport:guess"));
        assert!(!webhook_authentic(
            &s,
            &|h| (h == "authorization").then(|| wrong.clone()),
            b"{}",
            0
        ));

        let mut s = settings(Provider::Resend);
        s.webhook_secret = Some(Password::new(format!(
            "whsec_{}",
            STANDARD.encode(b"0123456789abcdef")
        )));
        let sign = |id: &str, ts: i64, body: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef").unwrap();
            mac.update(format!("{id}.{ts}.").as_bytes());
            mac.update(body);
            format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
        };
        let headers = |sig: String, ts: i64| {
            move |h: &str| match h {
                "svix-id" => Some("msg_1".to_string()),
                "svix-timestamp" => Some(ts.to_string()),
                "svix-signature" => Some(sig.clone()),
                _ => None,
            }
        };
        let now = 1_764_064_800;
        assert!(webhook_authentic(
            &s,
            &headers(sign("msg_1", now, b"{}"), now),
            b"{}",
            now
        ));
        assert!(!webhook_authentic(
            &s,
            &headers(sign("msg_1", now, b"{}"), now),
            b"{ }",
            now
        ));
        assert!(!webhook_authentic(
            &s,
            &headers(sign("msg_1", now - 3600, b"{}"), now - 3600),
            b"{}",
            now
        ));
        s.webhook_secret = None;
        assert!(!webhook_authentic(
            &s,
            &headers(sign("msg_1", now, b"{}"), now),
            b"{}",
            now
        ));
    }
}
