//! The providers' delivery webhooks: reading their events and checking that they come from
//! the provider.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{MailSettings, Provider};

/// A webhook body that is not the provider's format, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookError(pub String);

impl std::fmt::Display for WebhookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for WebhookError {
    fn from(why: &str) -> Self {
        Self(why.to_string())
    }
}

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
pub fn parse_webhook(provider: Provider, body: &[u8]) -> Result<Vec<Event>, WebhookError> {
    let v: Json = serde_json::from_slice(body)
        .map_err(|e| WebhookError(format!("the body is not JSON: {e}")))?;
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

/// What identifies one webhook call, so that a replay of it is recognised: Resend's (Svix's)
/// message id; for the others, which send none, a hash of the body (their events carry their
/// own ids and times, so the same body is the same events).
pub fn replay_key(
    provider: Provider,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
) -> String {
    match (provider, header("svix-id")) {
        (Provider::Resend, Some(id)) => format!("svix:{}", id.trim()),
        _ => format!(
            "sha256:{}",
            Sha256::digest(body)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
    }
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
    use crate::domain::Password;
    use crate::mail::testing::settings;

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
        let basic = format!(
            "Basic {}",
            STANDARD.encode("caseport:hook-secret-long-enough-to-be-safe")
        );
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
