//! Handing an email to the provider: bounded retries with backoff, and a failure's reason in
//! words a case manager can act on.

use std::time::Duration;

use super::wire::{Answer, build, interpret};
use super::{MailSettings, Message, Transport, TransportError};

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
/// The longest one send can take, in seconds: every attempt timing out (`timeout_seconds`
/// each), the pauses between them, and a margin. A send still unanswered after it was
/// interrupted.
pub fn longest_send_seconds(timeout_seconds: i64) -> i64 {
    timeout_seconds * i64::from(MAX_ATTEMPTS) + 15
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::testing::{message, settings};
    use crate::mail::{InResponse, OutRequest, Provider};
    use std::cell::RefCell;

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
}
