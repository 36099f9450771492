//! The mail variables: which provider, where, with which credentials, from whom.

use std::time::Duration;

use serde::Serialize;

use super::Provider;
use crate::domain::Password;
use crate::settings::SettingError;

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
    pub fn of(settings: &Result<Option<MailSettings>, SettingError>) -> Self {
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

/// The server token the components send to the local mailbox, and the only one it takes:
/// `mail_api_token`, or `local` when that is empty.
pub fn local_mailbox_token(configured: Option<&str>) -> String {
    configured
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or("local")
        .to_string()
}

/// The fewest characters of a webhook password sent as HTTP Basic credentials (Postmark,
/// SendGrid): anyone can try one, so it must be too long to guess.
pub const WEBHOOK_SECRET_MIN: usize = 24;

/// Refuses a webhook secret that could be guessed, or that is not Resend's `whsec_` key.
fn check_webhook_secret(provider: Provider, secret: &str) -> Result<(), SettingError> {
    if secret.is_empty() {
        return Ok(());
    }
    match provider {
        Provider::Resend => {
            use base64::Engine as _;
            let key = secret
                .strip_prefix("whsec_")
                .and_then(|k| base64::engine::general_purpose::STANDARD.decode(k).ok());
            if key.is_none_or(|k| k.len() < 16) {
                return Err(SettingError::new(
                    "mail_webhook_secret",
                    "must be Resend's signing secret, whsec_ followed by at least 16 bytes in base64 (copy it from Resend's webhook page)",
                ));
            }
        }
        _ if secret.chars().count() < WEBHOOK_SECRET_MIN => {
            return Err(SettingError::new(
                "mail_webhook_secret",
                format!(
                    "has {} characters; a webhook password needs at least {WEBHOOK_SECRET_MIN} (generate a random one)",
                    secret.chars().count()
                ),
            ));
        }
        _ => {}
    }
    Ok(())
}

impl MailSettings {
    /// Reads the mail variables through `get`: `None` when `mail_provider` is empty (no email
    /// can be sent: nothing falls back to a local capture), an error naming the variable when
    /// a value is malformed. `timeout` is the general settings' `mail_timeout_seconds`.
    pub fn from_variables(
        get: impl Fn(&str) -> Option<String>,
        timeout: Duration,
    ) -> Result<Option<Self>, SettingError> {
        let value = |name: &str| get(name).map(|v| v.trim().to_string()).unwrap_or_default();
        let raw_provider = value("mail_provider");
        if raw_provider.is_empty() {
            return Ok(None);
        }
        let provider = Provider::parse(&raw_provider).ok_or_else(|| {
            SettingError::new(
                "mail_provider",
                format!("= {raw_provider:?} must be postmark, sendgrid, resend or dev-mailbox"),
            )
        })?;
        let api_url = match value("mail_api_url") {
            u if u.is_empty() => provider.default_url().to_string(),
            u => u.trim_end_matches('/').to_string(),
        };
        let host = api_url
            .strip_prefix("https://")
            .or_else(|| api_url.strip_prefix("http://"));
        if host.is_none_or(|h| h.is_empty() || h.contains('/')) {
            return Err(SettingError::new(
                "mail_api_url",
                format!(
                    "= {api_url:?} must be an origin such as https://api.postmarkapp.com (no path)"
                ),
            ));
        }
        if provider != Provider::DevMailbox && api_url.ends_with(".spin.internal") {
            return Err(SettingError::new(
                "mail_api_url",
                format!(
                    "= {api_url:?} is the local mailbox, but mail_provider is {}; set mail_api_url to {}",
                    provider.as_str(),
                    provider.default_url()
                ),
            ));
        }
        let api_token = value("mail_api_token");
        if api_token.is_empty() && provider != Provider::DevMailbox {
            return Err(SettingError::new(
                "mail_api_token",
                format!(
                    "is empty; {} needs the API token of the account",
                    provider.name()
                ),
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
            return Err(SettingError::new(
                "portal_url",
                format!("= {portal_url:?} must start with https:// (or http:// locally)"),
            ));
        }
        let webhook_secret = value("mail_webhook_secret");
        check_webhook_secret(provider, &webhook_secret)?;
        Ok(Some(Self {
            provider,
            api_url,
            api_token: Password::new(local_mailbox_token(Some(&api_token))),
            from,
            timeout,
            webhook_secret: Some(webhook_secret)
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
    pub(super) fn api_host(&self) -> &str {
        self.api_url
            .split_once("://")
            .map_or(self.api_url.as_str(), |(_, h)| h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            .map(|e| e.to_string())
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
        assert!(bad("mail_webhook_secret", "short-password").contains("at least 24"));
        let resend = |secret: &'static str| {
            MailSettings::from_variables(
                move |n| match n {
                    "mail_provider" => Some("resend".into()),
                    "mail_api_token" => Some("t".into()),
                    "mail_webhook_secret" => Some(secret.into()),
                    _ => None,
                },
                Duration::from_secs(10),
            )
        };
        assert!(resend("whsec_c2hvcnQ=").is_err(), "five bytes");
        assert!(resend("not-a-whsec-secret-but-long-enough").is_err());
        assert!(resend("whsec_MDEyMzQ1Njc4OWFiY2RlZg==").is_ok());
    }

    #[test]
    fn the_local_mailbox_takes_only_the_configured_token() {
        assert_eq!(local_mailbox_token(None), "local");
        assert_eq!(local_mailbox_token(Some("  ")), "local");
        assert_eq!(local_mailbox_token(Some(" s3cret ")), "s3cret");
        let read = |token: &'static str| {
            MailSettings::from_variables(
                move |n| match n {
                    "mail_provider" => Some("dev-mailbox".into()),
                    "mail_api_token" => Some(token.into()),
                    _ => None,
                },
                Duration::from_secs(10),
            )
            .unwrap()
            .unwrap()
        };
        // What the components send is what the mailbox expects.
        assert_eq!(read("").api_token.expose(), local_mailbox_token(Some("")));
        assert_eq!(
            read("s3cret").api_token.expose(),
            local_mailbox_token(Some("s3cret"))
        );
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
}
