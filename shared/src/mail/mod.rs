//! Mail: what an email is, the providers Caseport speaks to (Postmark, SendGrid, Resend, and
//! the local dev-mailbox, which speaks Postmark's API), and the [`Transport`] port over which
//! requests go (implemented on wasi:http in `functions/edge`, by scripted fakes in tests).
//!
//! One module per job: `settings` (the mail variables), `wire` (each provider's request and
//! answer formats), `deliver` (bounded retries, a failure's reason in plain words), `emails`
//! (the emails Caseport writes) and `webhooks` (the providers' delivery events).

mod deliver;
mod emails;
mod settings;
mod webhooks;
mod wire;

use std::time::Duration;

use zeroize::Zeroizing;

use crate::domain::Email;

pub use deliver::{Failure, MAX_ATTEMPTS, Sent, deliver, longest_send_seconds};
pub use emails::{
    email_changed_email, human_time, masked, reset_link_email, staff_welcome_email,
    temporary_password_email,
};
pub use settings::{MailSettings, MailStatus, NOT_CONFIGURED, local_mailbox_token};
pub use webhooks::{
    Event, EventStatus, WebhookError, parse_webhook, replay_key, webhook_authentic,
};
pub use wire::build;

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

#[cfg(test)]
pub(crate) mod testing {
    //! Settings and a message for the mail tests.

    use super::*;
    use crate::domain::Password;

    /// Settings for `provider`, with a token, a sender and a webhook secret.
    pub fn settings(provider: Provider) -> MailSettings {
        MailSettings::from_variables(
            |n| match n {
                "mail_provider" => Some(provider.as_str().into()),
                "mail_api_token" => Some("server-token".into()),
                "mail_from" => Some("Sunrise Clinic <portal@sunrise.example>".into()),
                "mail_webhook_secret" if provider == Provider::Resend => {
                    // whsec_ and "0123456789abcdef" in base64.
                    Some("whsec_MDEyMzQ1Njc4OWFiY2RlZg==".into())
                }
                "mail_webhook_secret" => Some("hook-secret-long-enough-to-be-safe".into()),
                _ => None,
            },
            Duration::from_secs(10),
        )
        .unwrap()
        .unwrap()
    }

    /// A temporary-password email to Jane.
    pub fn message() -> Message {
        temporary_password_email(
            &settings(Provider::Postmark),
            &Email::parse("jdoe123@hotmail.com").unwrap(),
            "jdoe123@hotmail.com",
            &Password::new("ABC234-DEF567-GHJ89K".into()),
            "Saturday",
            "d-1",
        )
    }
}
