//! The status answer (`GET /api/status`): what an operator, a health probe or `caseport up` at
//! start needs to see at a glance. Nothing in it is secret.

use serde::Serialize;

use crate::mail::{MailSettings, MailStatus, Provider};
use crate::settings::{SettingError, Settings};

/// `GET /api/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// `ok`, or `attention` when a warning below needs the operator.
    pub status: &'static str,
    pub mail: MailStatus,
    /// What is switched on that belongs to a local run only; a server with any of it must
    /// listen on loopback alone.
    pub local_only: Vec<&'static str>,
    /// One line each, for the operator's log.
    pub warnings: Vec<String>,
}

/// The status of a deployment with these settings.
pub fn status(settings: &Settings, mail: &Result<Option<MailSettings>, SettingError>) -> Status {
    let mail_status = MailStatus::of(mail);
    let mut local_only = Vec::new();
    if settings.demo_data {
        local_only.push("demo data (accounts with published passwords)");
    }
    if matches!(mail, Ok(Some(m)) if m.provider == Provider::DevMailbox) {
        local_only.push("the local mailbox (captured emails, passwords included)");
    }
    let warnings: Vec<String> = mail_status.problem.iter().cloned().collect();
    Status {
        status: if warnings.is_empty() {
            "ok"
        } else {
            "attention"
        },
        mail: mail_status,
        local_only,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_mail_provider_is_a_warning_that_names_the_variable() {
        let s = status(&Settings::default(), &Ok(None));
        assert_eq!(s.status, "attention");
        assert!(s.warnings[0].contains("mail_provider"), "{:?}", s.warnings);
        assert!(s.local_only.is_empty());
    }

    #[test]
    fn demo_data_and_the_local_mailbox_are_local_only() {
        let mail = MailSettings::from_variables(
            |n| (n == "mail_provider").then(|| "dev-mailbox".to_string()),
            std::time::Duration::from_secs(10),
        );
        let settings = Settings {
            demo_data: true,
            ..Settings::default()
        };
        let s = status(&settings, &mail);
        assert_eq!((s.status, s.local_only.len()), ("ok", 2));
    }
}
