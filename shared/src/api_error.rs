//! The one JSON error shape of the API, `{"error": {"code", "message", "field"?}}`, and the
//! one list of error codes with their HTTP status.

use std::fmt;

use serde::Serialize;

use crate::ports::{Contention, StorageFailure};

/// Declares every error code once: its variant, its text on the wire and its HTTP status.
macro_rules! codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $text:literal => $status:literal,)*) => {
        /// A stable, machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Code {
            /// Every code, in the order declared (the set docs/openapi.yaml must list).
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as the API writes it, such as `not_found`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }

            /// The HTTP status of every error with this code: decided here, and only here.
            pub fn status(self) -> u16 {
                match self {
                    $(Code::$variant => $status,)*
                }
            }
        }
    };
}

codes! {
    /// The request body is not valid JSON.
    BadJson = "bad_json" => 400,
    /// The request could not be read.
    BadRequest = "bad_request" => 400,
    /// A webhook body that is not the provider's format.
    BadWebhook = "bad_webhook" => 400,
    /// Wrong username or password (the same for an unknown user).
    InvalidCredentials = "invalid_credentials" => 401,
    /// The forced-change step expired or was completed.
    InvalidChangeToken = "invalid_change_token" => 401,
    /// The emailed reset link expired or was used.
    InvalidResetToken = "invalid_reset_token" => 401,
    /// A webhook without valid credentials or signature.
    InvalidSignature = "invalid_signature" => 401,
    /// No session, or it ended.
    NotSignedIn = "not_signed_in" => 401,
    /// The right temporary password, past its expiry.
    TemporaryPasswordExpired = "temporary_password_expired" => 401,
    /// A state-changing request from another site's page.
    BadOrigin = "bad_origin" => 403,
    /// Not allowed for this role.
    Forbidden = "forbidden" => 403,
    /// The setup secret is wrong.
    InvalidSetupToken = "invalid_setup_token" => 403,
    /// Setup is off (no `setup_token`).
    SetupDisabled = "setup_disabled" => 403,
    /// The local mailbox, asked from anywhere but this computer.
    LocalOnly = "local_only" => 403,
    /// Nothing here, or not yours to see: the same answer.
    NotFound = "not_found" => 404,
    /// The path exists; the method does not.
    MethodNotAllowed = "method_not_allowed" => 405,
    /// An administrator exists already.
    AlreadySetUp = "already_set_up" => 409,
    /// A shown-once password is never shown again.
    AlreadyShown = "already_shown" => 409,
    /// A staff member has this email already.
    EmailInUse = "email_in_use" => 409,
    /// Another clinic already answers on this host name.
    HostInUse = "host_in_use" => 409,
    /// The client was sent a password moments ago.
    RecentlyReset = "recently_reset" => 409,
    /// Another reset of the client is sending.
    ResetInProgress = "reset_in_progress" => 409,
    /// A repeated key of a reset that was interrupted.
    ResetInterrupted = "reset_interrupted" => 409,
    /// Someone else changed the record first.
    VersionConflict = "version_conflict" => 409,
    /// A client with the same name, date of birth and email exists; send again to add anyway.
    PossibleDuplicate = "possible_duplicate" => 409,
    /// The request body is too large.
    BodyTooLarge = "body_too_large" => 413,
    /// Not `application/json`.
    UnsupportedMediaType = "unsupported_media_type" => 415,
    /// A field is missing or invalid (`field` names it).
    Invalid = "invalid" => 422,
    /// The client's email address looks wrong.
    EmailInvalid = "email_invalid" => 422,
    /// The client has no email address.
    NoEmail = "no_email" => 422,
    /// The password and its confirmation differ.
    PasswordsDiffer = "passwords_differ" => 422,
    /// The new password breaks the policy (the message says how).
    WeakPassword = "weak_password" => 422,
    /// Throttled: see `Retry-After`.
    TooManyAttempts = "too_many_attempts" => 429,
    /// Something failed inside; the log has the detail.
    Internal = "internal" => 500,
    /// A setting is malformed; the log names it.
    Misconfigured = "misconfigured" => 500,
    /// The mail provider did not take the email.
    MailFailed = "mail_failed" => 502,
    /// No mail provider is configured: nothing was sent.
    MailNotConfigured = "mail_not_configured" => 503,
    /// Storage could not be reached.
    StorageUnavailable = "storage_unavailable" => 503,
    /// The server's storage is full: nothing of the request was kept.
    StorageFull = "storage_full" => 503,
    /// Other requests held the database for longer than this one could wait.
    Busy = "busy" => 503,
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Code,
    /// A sentence a person can act on.
    pub message: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// Seconds after which a retry may succeed (sent as `Retry-After`).
    pub retry_after: Option<u64>,
    /// The methods the address accepts (sent as `Allow` with a 405).
    pub allow: Option<&'static [&'static str]>,
    /// Every field at fault and why, when a form had several problems (`field` and `message`
    /// are then the first of them).
    pub problems: Vec<(String, String)>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<Problem<'a>>,
}

#[derive(Serialize)]
struct Problem<'a> {
    field: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with no field.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            allow: None,
            problems: Vec::new(),
        }
    }

    /// One error for a form with several problems: the first one's, listing all of them
    /// (`fields` in the body), so that the page can show each beside its field. `None` when
    /// `results` hold no error.
    pub fn all<const N: usize>(results: [Option<ApiError>; N]) -> Option<Self> {
        let errors: Vec<ApiError> = results.into_iter().flatten().collect();
        let mut first = errors.first()?.clone();
        if errors.len() > 1 {
            first.problems = errors
                .iter()
                .filter_map(|e| Some((e.field.clone()?, e.message.clone())))
                .collect();
        }
        Some(first)
    }

    /// The same error, naming the request field at fault.
    pub fn at(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    /// The same error, with the seconds after which a retry may succeed.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The HTTP status, from the code.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// `invalid`, naming the field at fault.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(Code::Invalid, message).at(field)
    }

    /// `internal`: something went wrong inside; the detail goes to the log, not here.
    pub fn internal() -> Self {
        Self::new(
            Code::Internal,
            "Something went wrong on our side. Try again; if it keeps happening, contact support.",
        )
    }

    /// `not_found`, the same for "does not exist" and "not yours to see".
    pub fn not_found() -> Self {
        Self::new(Code::NotFound, "There is nothing at this address.")
    }

    /// `method_not_allowed`, naming the methods this address accepts (also sent as `Allow`).
    pub fn method_not_allowed(allowed: &'static [&'static str]) -> Self {
        let names = match allowed {
            [one] => (*one).to_string(),
            [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
            [] => "no method".to_string(),
        };
        Self {
            allow: Some(allowed),
            ..Self::new(
                Code::MethodNotAllowed,
                format!("This address accepts {names} only."),
            )
        }
    }

    /// `misconfigured`: `why` (naming the setting) goes to the operator's log.
    pub fn misconfigured(why: &dyn fmt::Display) -> Self {
        eprintln!("configuration: {why}");
        Self::new(
            Code::Misconfigured,
            "Caseport is not configured correctly; the operator's log names the setting.",
        )
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        let envelope = Envelope {
            error: Body {
                code: self.code.as_str(),
                message: &self.message,
                field: self.field.as_deref(),
                fields: self
                    .problems
                    .iter()
                    .map(|(field, message)| Problem { field, message })
                    .collect(),
            },
        };
        // Serialising a struct of strings cannot fail; the fallback keeps components panic-free.
        serde_json::to_string(&envelope).unwrap_or_else(|_| {
            r#"{"error":{"code":"internal","message":"Something went wrong."}}"#.to_string()
        })
    }
}

impl From<crate::ports::StorageError> for ApiError {
    fn from(e: crate::ports::StorageError) -> Self {
        // The client learns only that it failed; the operator's log gets the reason.
        eprintln!("{e}");
        match e.kind {
            StorageFailure::Full => Self::new(
                Code::StorageFull,
                "The server's storage is full, so this was not saved. Try again later; the operator must make room.",
            )
            .retry_after(60),
            StorageFailure::Unreachable => Self::new(
                Code::StorageUnavailable,
                "The service cannot reach its storage right now, so nothing was changed. Try again in a minute.",
            )
            .retry_after(30),
            StorageFailure::Contended => Self::new(
                Code::Busy,
                "The service is busy right now. Try again in a moment.",
            )
            .retry_after(1),
            StorageFailure::Failed => Self::internal(),
        }
    }
}

impl Contention for ApiError {
    /// A request that met another writer answers `busy`, which nothing else in the rules
    /// does: the work may run again.
    fn is_contended(&self) -> bool {
        self.code == Code::Busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_problems_are_listed_and_one_is_not() {
        let none = ApiError::all([None, None]);
        assert!(none.is_none());
        let one = ApiError::all([None, Some(ApiError::invalid("dob", "Enter it."))]).unwrap();
        assert_eq!(one.field.as_deref(), Some("dob"));
        assert!(!one.to_json().contains("\"fields\""), "{}", one.to_json());
        let two = ApiError::all([
            Some(ApiError::invalid("first_name", "Enter the first name.")),
            None,
            Some(ApiError::invalid("dob", "Enter it.")),
        ])
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&two.to_json()).unwrap();
        assert_eq!(v["error"]["field"], "first_name");
        assert_eq!(v["error"]["fields"][1]["field"], "dob");
        assert_eq!(v["error"]["fields"][1]["message"], "Enter it.");
        assert_eq!(v["error"]["fields"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn the_field_is_present_only_when_set() {
        let plain = ApiError::not_found().to_json();
        assert_eq!(
            plain,
            r#"{"error":{"code":"not_found","message":"There is nothing at this address."}}"#
        );
        let with_field = ApiError::invalid("dob", "Enter a date as YYYY-MM-DD.");
        let v: serde_json::Value = serde_json::from_str(&with_field.to_json()).unwrap();
        assert_eq!(v["error"]["field"], "dob");
        assert_eq!(v["error"]["code"], "invalid");
    }

    #[test]
    fn messages_are_escaped_as_json() {
        let e = ApiError::new(Code::BadJson, "a \"quoted\" <tag>\n");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error"]["message"], "a \"quoted\" <tag>\n");
    }

    #[test]
    fn every_code_is_distinct_and_has_a_client_or_server_error_status() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!((400..600).contains(&code.status()), "{code}");
            assert!(
                code.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
        }
    }
}
