//! Each provider's wire format: the request that sends an email, and how its answer is read.

use serde_json::{Value as Json, json};
use zeroize::Zeroizing;

use super::{InResponse, MailSettings, Message, OutRequest, Provider};

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
pub(super) enum Answer {
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

pub(super) fn interpret(settings: &MailSettings, response: &InResponse) -> Answer {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::testing::{message, settings};

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
}
