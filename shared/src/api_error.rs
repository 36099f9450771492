//! The one JSON error shape of the API: `{"error": {"code", "message", "field"?}}`.

use serde::Serialize;

/// An error answered to a client, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status code.
    pub status: u16,
    /// A stable, machine-readable code, such as `not_found`.
    pub code: &'static str,
    /// A sentence a person can act on.
    pub message: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// Seconds after which a retry may succeed (sent as `Retry-After`).
    pub retry_after: Option<u64>,
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
}

impl ApiError {
    /// An error with no field.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 422 `invalid` naming the field at fault.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_string()),
            ..Self::new(422, "invalid", message)
        }
    }

    /// The same error with another code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    /// 500 `internal`: something went wrong inside; the detail goes to the log, not here.
    pub fn internal() -> Self {
        Self::new(
            500,
            "internal",
            "Something went wrong on our side. Try again; if it keeps happening, contact support.",
        )
    }

    /// 404 `not_found`, the same for "does not exist" and "not yours to see".
    pub fn not_found() -> Self {
        Self::new(404, "not_found", "There is nothing at this address.")
    }

    /// 503 `mail_not_configured`: no mail provider is set, so nothing was sent (or changed).
    pub fn mail_not_configured(message: impl Into<String>) -> Self {
        Self::new(503, "mail_not_configured", message)
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed(allowed: &str) -> Self {
        Self::new(
            405,
            "method_not_allowed",
            format!("This address accepts {allowed} only."),
        )
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        let envelope = Envelope {
            error: Body {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
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
        Self::internal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = ApiError::new(400, "bad_json", "a \"quoted\" <tag>\n");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error"]["message"], "a \"quoted\" <tag>\n");
    }
}
