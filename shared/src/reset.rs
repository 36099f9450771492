//! Reset and Send New: a new temporary password for a client's portal account, emailed (the
//! AccuCare way) or shown once (the Office Practicum way); the administrator's set password;
//! and the providers' delivery events.
//!
//! The order that keeps the reset invariants (docs/design.md), even if the component is
//! stopped halfway:
//! 1. Under the write lock: the idempotency key is claimed, the new password's hash is parked
//!    in `portal_resets.pending_phc` and a `mail_deliveries` row says `sending`. The client's
//!    previous password still works.
//! 2. The email goes to the provider (no lock held).
//! 3. Accepted: the parked hash becomes the credential (the old password stops working, other
//!    sessions end). Failed: the parked hash is dropped and the failure recorded.
//!
//! Stopped between 2 and 3, the email may be out while the credential is unchanged. Then the
//! parked password still signs in (and becomes the credential when it does), a delivery
//! webhook completes the reset, and Client Information shows the send as interrupted, so the
//! case manager knows the email may not have arrived and can send another.

use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::api_error::{ApiError, Code};
use crate::clients::{self, check_email};
use crate::clinics::{Scoped, ScopedKv};
use crate::credentials::{self, PortalIdentity};
use crate::ctx::Ctx;
use crate::deliveries;
use crate::domain::{Account, AccountKind, Email, Password, Role};
use crate::mail::{self, EventStatus, MailSettings, Provider, Transport};
use crate::passwords;
use crate::policy;
use crate::portal_resets::{self, NewReset, ResetRow};
use crate::ports::{Db, StorageError, transaction};

/// A reset with another key within this time after a successful send is refused, so two
/// case managers at once (or a retry with a fresh key) do not send two passwords.
pub const RECENT_SECONDS: i64 = 120;
/// How long a repeat of the same key waits for the first request to finish.
const REPLAY_WAIT_SECONDS: i64 = 20;

/// `POST /api/clients/:id/portal-password/reset`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub delivery: String,
    pub idempotency_key: String,
}

/// `PUT /api/clients/:id/portal-password`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRequest {
    pub password: String,
    pub password_confirm: String,
    #[serde(default = "yes")]
    pub reset_required: bool,
}

fn yes() -> bool {
    true
}

/// What a reset answers.
pub enum Outcome {
    /// A JSON answer with its status (a first answer, or the repeat of one).
    Json { status: u16, body: Json },
    /// The temporary password, to be shown once (`delivery: "display"`).
    Shown {
        username: String,
        temporary_password: Password,
        expires_at: String,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Email,
    Display,
}

/// The client fields a reset needs.
struct ClientRow {
    first_name: String,
    last_name: String,
    email: Option<String>,
}

impl ClientRow {
    fn identity(&self, client_id: i64) -> PortalIdentity<'_> {
        PortalIdentity {
            client_id,
            first_name: &self.first_name,
            last_name: &self.last_name,
            email: self.email.as_deref(),
        }
    }
}

fn load_client(db: &dyn Db, id: i64) -> Result<Option<ClientRow>, StorageError> {
    let rows = db.execute(
        "SELECT first_name, last_name, email FROM clients WHERE clinic_id = ?1 AND id = ?",
        &[id.into()],
    )?;
    Ok(rows.first().map(|r| ClientRow {
        first_name: r.text(0).unwrap_or_default().to_string(),
        last_name: r.text(1).unwrap_or_default().to_string(),
        email: r.text(2).map(str::to_string),
    }))
}

fn ts(second: i64) -> String {
    jiff::Timestamp::from_second(second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn staff_name(db: &dyn Db, id: i64) -> Result<String, StorageError> {
    Ok(db
        .execute(
            "SELECT display_name FROM staff WHERE clinic_id = ?1 AND id = ?",
            &[id.into()],
        )?
        .first()
        .and_then(|r| r.text(0).map(str::to_string))
        .unwrap_or_else(|| "Someone".into()))
}

/// The longest a send can take under these settings; a send older than it was interrupted.
fn stale_seconds(ctx: &Ctx<'_>) -> i64 {
    mail::longest_send_seconds(ctx.settings.mail_timeout_seconds)
}

/// Refuses a new reset while another is sending, or (`recent`) just after a successful one.
fn check_not_busy(ctx: &Ctx<'_>, client_id: i64, now: i64, recent: bool) -> Result<(), ApiError> {
    let Some(r) = portal_resets::latest_emailed(ctx.db, client_id)? else {
        return Ok(());
    };
    let who = staff_name(ctx.db, r.requested_by)?;
    let age = now - r.started_at;
    if r.pending && age < stale_seconds(ctx) {
        return Err(ApiError::new(
            Code::ResetInProgress,
            format!(
                "{who} is sending this client a new temporary password right now. Wait a moment, then reload to see how it went."
            ),
        )
        .retry_after(5));
    }
    let mail_ok = matches!(
        r.mail_status.as_deref(),
        Some("sending" | "accepted" | "delivered")
    );
    if recent && !r.pending && mail_ok && age < RECENT_SECONDS {
        let to =
            r.to.as_deref()
                .and_then(|e| Email::parse(e).ok())
                .map(|e| mail::masked(&e))
                .unwrap_or_default();
        let wait = RECENT_SECONDS - age;
        return Err(ApiError::new(
            Code::RecentlyReset,
            format!(
                "{who} sent this client a new temporary password to {to} {age} seconds ago. Ask the client to check their inbox and spam folder; you can send another in {wait} seconds."
            ),
        )
        .retry_after(wait.unsigned_abs()));
    }
    Ok(())
}

/// What step 1 found.
enum Start {
    Repeat(ResetRow),
    Shown(String),
    Send {
        reset_id: i64,
        delivery_id: i64,
        public_id: String,
        username: String,
    },
}

fn parse_key(raw: &str) -> Result<String, ApiError> {
    let key = raw.trim();
    if !(8..=200).contains(&key.len()) || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "idempotency_key",
            "Send a unique idempotency_key of 8 to 200 visible characters (a fresh UUID per click of Reset and Send New).",
        ));
    }
    Ok(key.to_string())
}

/// `POST /api/clients/:id/portal-password/reset`. `mail` is `None` when no provider is
/// configured: an emailed reset is then refused before anything changes.
pub fn reset(
    ctx: &Ctx<'_>,
    mail: Option<&MailSettings>,
    transport: &dyn Transport,
    staff: Account,
    role: Role,
    client_id: i64,
    req: &ResetRequest,
) -> Result<Outcome, ApiError> {
    let delivery = match req.delivery.as_str() {
        "email" => Delivery::Email,
        "display" => Delivery::Display,
        _ => {
            return Err(ApiError::invalid(
                "delivery",
                "Choose how the temporary password reaches the client: \"email\" or \"display\".",
            ));
        }
    };
    let key = parse_key(&req.idempotency_key)?;
    if !clients::may_see(ctx.db, staff, role, client_id)? {
        return Err(ApiError::not_found());
    }
    if let Some(first) = portal_resets::by_key(ctx.db, client_id, &key)? {
        return repeat(ctx, transport, first);
    }
    let client = load_client(ctx.db, client_id)?.ok_or_else(ApiError::not_found)?;
    // Fail closed: with no provider nothing is "sent", and nothing changes.
    let sent_to = match (delivery, mail) {
        (Delivery::Display, _) => None,
        (Delivery::Email, None) => {
            return Err(ApiError::new(
                Code::MailNotConfigured,
                format!(
                    "The temporary password cannot be emailed. {} Nothing was changed; show the password once instead (Other ways).",
                    mail::NOT_CONFIGURED
                ),
            ));
        }
        (Delivery::Email, Some(mail)) => Some((email_to_use(&client)?, mail)),
    };
    let (temporary, phc) = passwords::new_temporary()?;
    let now = ctx.now();
    let expires_at = ts(now + ctx.settings.temp_password_ttl_hours * 3600);
    let public_id = deliveries::new_public_id()?;
    let subject = format!("client:{client_id}");
    let actor = staff.label();

    let start = transaction(ctx.db, || -> Result<Start, ApiError> {
        if let Some(first) = portal_resets::by_key(ctx.db, client_id, &key)? {
            return Ok(Start::Repeat(first));
        }
        check_not_busy(ctx, client_id, now, true)?;
        // An interrupted earlier send is over: its parked password will never work.
        portal_resets::supersede_pending(ctx.db, client_id)?;
        let username = credentials::choose_portal_username(
            ctx.db,
            &client.identity(client_id),
            sent_to.as_ref().map(|(to, _)| to),
        )?;
        let new = NewReset {
            client_id,
            idempotency_key: &key,
            requested_by: staff.id,
            delivery: "display",
            status: "shown",
            username: &username,
            pending_phc: None,
            temp_expires_at: Some(&expires_at),
            mail_delivery_id: None,
            answer_status: Some(200),
            started_at: now,
        };
        match &sent_to {
            Some((to, mail)) => {
                let delivery_id = deliveries::insert(
                    ctx,
                    mail,
                    &public_id,
                    Some(client_id),
                    "temporary_password",
                    to,
                )?;
                let reset_id = portal_resets::insert(
                    ctx,
                    &NewReset {
                        delivery: "email",
                        status: "pending",
                        pending_phc: Some(&phc),
                        mail_delivery_id: Some(delivery_id),
                        answer_status: None,
                        ..new
                    },
                )?;
                ctx.audit(
                    &actor,
                    "portal_password_reset_started",
                    Some(&subject),
                    json!({ "delivery": "email", "sent_to": to.as_ref(), "delivery_id": public_id, "username": username }),
                )?;
                Ok(Start::Send {
                    reset_id,
                    delivery_id,
                    public_id: public_id.clone(),
                    username,
                })
            }
            None => {
                credentials::install_portal(
                    ctx,
                    client_id,
                    &username,
                    &phc,
                    true,
                    Some(&expires_at),
                )?;
                portal_resets::insert(ctx, &new)?;
                ctx.audit(
                    &actor,
                    "portal_password_shown",
                    Some(&subject),
                    json!({ "delivery": "display", "username": username, "expires_at": expires_at }),
                )?;
                Ok(Start::Shown(username))
            }
        }
    })?;

    let (reset_id, delivery_id, public_id, username) = match start {
        Start::Repeat(first) => return repeat(ctx, transport, first),
        Start::Shown(username) => {
            return Ok(Outcome::Shown {
                username,
                temporary_password: temporary,
                expires_at,
            });
        }
        Start::Send {
            reset_id,
            delivery_id,
            public_id,
            username,
        } => (reset_id, delivery_id, public_id, username),
    };
    let Some((to, mail)) = sent_to else {
        return Err(ApiError::internal());
    };
    let expires_human =
        jiff::Timestamp::from_second(now + ctx.settings.temp_password_ttl_hours * 3600)
            .map(|t| mail::human_time(t, ctx.settings.clinic_timezone.rules()))
            .unwrap_or_else(|_| expires_at.clone());
    let message = mail::temporary_password_email(
        mail,
        &to,
        &username,
        &temporary,
        &expires_human,
        &public_id,
    );
    drop(temporary);
    let sent = mail::deliver(transport, mail, &message);
    drop(message);

    match sent {
        Ok(sent) => {
            let body = json!({
                "status": "sent",
                "sent_to": mail::masked(&to),
                "username": username,
                "expires_at": expires_at,
                "delivery_id": public_id,
            });
            transaction(ctx.db, || {
                deliveries::record_outcome(ctx, mail, delivery_id, &Ok(&sent))?;
                portal_resets::keep_answer(ctx.db, reset_id, 200, &body)?;
                portal_resets::complete(ctx, reset_id, &actor, json!({ "attempts": sent.attempts }))
            })?;
            Ok(Outcome::Json { status: 200, body })
        }
        Err(failure) => {
            let error = ApiError::new(
                Code::MailFailed,
                format!(
                    "The email was not sent: {} The client's previous password still works.",
                    failure.reason
                ),
            );
            let body: Json = serde_json::from_str(&error.to_json()).unwrap_or(Json::Null);
            transaction(ctx.db, || {
                deliveries::record_outcome(ctx, mail, delivery_id, &Err(&failure))?;
                portal_resets::fail(ctx.db, reset_id, error.status(), &body)?;
                ctx.audit(
                    &actor,
                    "portal_password_reset_failed",
                    Some(&subject),
                    json!({ "delivery_id": public_id, "reason": failure.reason, "attempts": failure.attempts }),
                )
            })?;
            Err(error)
        }
    }
}

/// The address an emailed reset goes to, or why it cannot.
fn email_to_use(client: &ClientRow) -> Result<Email, ApiError> {
    let Some(raw) = client.email.as_deref().filter(|e| !e.trim().is_empty()) else {
        return Err(ApiError::new(
            Code::NoEmail,
            "This client has no email address. Add one in Client Information, or show the temporary password once instead.",
        )
        .at("email"));
    };
    let check = check_email(Some(raw));
    if !check.ok {
        // The reason already names the likely domain; it is said once.
        let message = format!(
            "The email address {raw} looks wrong: {} Correct it in Client Information, then send again.",
            check.reason.unwrap_or_default()
        );
        return Err(ApiError::new(Code::EmailInvalid, message).at("email"));
    }
    Email::parse(raw).map_err(|m| ApiError::new(Code::EmailInvalid, m).at("email"))
}

/// The answer to a repeated idempotency key: the first answer, never a second email.
fn repeat(ctx: &Ctx<'_>, transport: &dyn Transport, first: ResetRow) -> Result<Outcome, ApiError> {
    let mut row = first;
    let mut waited = 0;
    let sending = |row: &ResetRow| ctx.now() - row.started_at < stale_seconds(ctx);
    while row.status == "pending" && sending(&row) && waited < REPLAY_WAIT_SECONDS * 10 {
        transport.sleep(std::time::Duration::from_millis(100));
        waited += 1;
        row = portal_resets::by_id(ctx.db, row.id)?.ok_or_else(ApiError::internal)?;
    }
    match (row.status.as_str(), row.answer_status, &row.answer) {
        ("shown", _, _) => Err(ApiError::new(
            Code::AlreadyShown,
            "This temporary password was shown once and is not shown again. If it was lost, reset the password again.",
        )),
        ("pending", _, _) if sending(&row) => Err(ApiError::new(
            Code::ResetInProgress,
            "This reset is still being sent. Wait a moment, then reload to see how it went.",
        )
        .retry_after(5)),
        (_, Some(status), Some(answer)) => Ok(Outcome::Json {
            status: u16::try_from(status).unwrap_or(500),
            body: serde_json::from_str(answer).unwrap_or(Json::Null),
        }),
        _ => Err(ApiError::new(
            Code::ResetInterrupted,
            "This reset was interrupted before Caseport heard back from the mail service, so the email may not have arrived. Reset again to send a new password.",
        )),
    }
}

/// `PUT /api/clients/:id/portal-password`: an administrator types the password (twice).
pub fn set_password(
    ctx: &Ctx<'_>,
    staff: Account,
    role: Role,
    client_id: i64,
    req: &SetRequest,
) -> Result<Json, ApiError> {
    if role != Role::Admin {
        return Err(ApiError::new(
            Code::Forbidden,
            "Only an administrator can set a client's password. Use Reset and Send New instead.",
        ));
    }
    let client = load_client(ctx.db, client_id)?.ok_or_else(ApiError::not_found)?;
    if req.password != req.password_confirm {
        return Err(ApiError::new(
            Code::PasswordsDiffer,
            "The two passwords are not the same. Type the password again in both boxes.",
        )
        .at("password_confirm"));
    }
    let password = Password::new(req.password.clone());
    let now = ctx.now();
    let account = Account {
        kind: AccountKind::Client,
        id: client_id,
    };
    let own_words = credentials::own_words(ctx.db, account)?;
    let context = policy::Context::chosen(&own_words);
    policy::require(
        password.expose(),
        ctx.settings.password_min_length,
        &context,
        "password",
    )?;
    let phc = passwords::hash(password.expose())?;
    let key = format!("admin-set-{}", deliveries::new_public_id()?);
    let username = transaction(ctx.db, || {
        check_not_busy(ctx, client_id, now, false)?;
        portal_resets::supersede_pending(ctx.db, client_id)?;
        let username =
            credentials::choose_portal_username(ctx.db, &client.identity(client_id), None)?;
        credentials::install_portal(ctx, client_id, &username, &phc, req.reset_required, None)?;
        portal_resets::insert(
            ctx,
            &NewReset {
                client_id,
                idempotency_key: &key,
                requested_by: staff.id,
                delivery: "admin_set",
                status: "set",
                username: &username,
                pending_phc: None,
                temp_expires_at: None,
                mail_delivery_id: None,
                answer_status: Some(200),
                started_at: now,
            },
        )?;
        ctx.audit(
            &staff.label(),
            "portal_password_set",
            Some(&format!("client:{client_id}")),
            json!({ "delivery": "admin_set", "username": username, "reset_required": req.reset_required }),
        )?;
        Ok::<_, ApiError>(username)
    })?;
    Ok(json!({ "status": "set", "username": username, "reset_required": req.reset_required }))
}

/// What a webhook call changed.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    pub updated: usize,
    pub unknown: usize,
    /// The call was a replay of one already applied: nothing changed.
    pub replayed: bool,
}

/// How long applied webhook calls are remembered: far longer than a signature stays valid.
const WEBHOOKS_REMEMBERED_SECONDS: i64 = 7 * 24 * 3600;

/// Applies a provider's delivery events, once per webhook call (`replay_key`, see
/// `mail::replay_key`): the delivery moves to delivered, bounced or failed (a later
/// `delivered` does not undo a bounce), a reset still parked completes or ends, and the
/// client's history says so. All of one call or nothing. The webhook is the deployment's
/// (one provider account for every clinic), so `deployment` is unscoped: each event is
/// applied in its email's clinic.
pub fn apply_events(
    deployment: &Ctx<'_>,
    provider: Provider,
    replay_key: &str,
    events: &[mail::Event],
) -> Result<Applied, StorageError> {
    transaction(deployment.db, || {
        let now = deployment.now();
        deployment.db.execute(
            "DELETE FROM webhook_events WHERE received_at < ?",
            &[(now - WEBHOOKS_REMEMBERED_SECONDS).into()],
        )?;
        let first = deployment.db.execute(
            "INSERT INTO webhook_events (provider, event_id, received_at) VALUES (?, ?, ?)
             ON CONFLICT DO NOTHING RETURNING 1",
            &[provider.as_str().into(), replay_key.into(), now.into()],
        )?;
        if first.first().is_none() {
            return Ok(Applied {
                replayed: true,
                ..Applied::default()
            });
        }
        let mut applied = Applied::default();
        for event in events {
            if apply_event(deployment, provider, event)? {
                applied.updated += 1;
            } else {
                applied.unknown += 1;
            }
        }
        Ok(applied)
    })
}

/// One event, inside the call's transaction; false when no delivery is known for it.
fn apply_event(
    deployment: &Ctx<'_>,
    provider: Provider,
    event: &mail::Event,
) -> Result<bool, StorageError> {
    let Some(found) = deliveries::find_for_event(deployment.db, provider, event)? else {
        return Ok(false);
    };
    // The rest is the email's clinic's, and goes through its scope.
    let db = Scoped::new(deployment.db, found.clinic);
    let kv = ScopedKv::new(deployment.kv, found.clinic);
    let ctx = &Ctx {
        db: &db,
        kv: &kv,
        clock: deployment.clock,
        settings: deployment.settings,
    };
    let actor = format!("provider:{}", provider.as_str());
    deliveries::apply_event(ctx, &found, event)?;
    // A reset still parked (the component stopped before recording the send):
    // delivered completes it; a bounce or failure ends it.
    for r in portal_resets::pending_for_delivery(ctx.db, found.id)? {
        if event.status == EventStatus::Delivered {
            portal_resets::complete(
                ctx,
                r.id,
                &actor,
                json!({ "completed_by": "delivery_webhook" }),
            )?;
        } else {
            portal_resets::end_undelivered(ctx.db, r.id)?;
        }
    }
    if let Some(client_id) = found.client_id {
        ctx.audit(
            &actor,
            &format!("mail_{}", event.status.as_str()),
            Some(&format!("client:{client_id}")),
            json!({ "delivery_id": found.public_id, "to": found.to, "detail": event.detail }),
        )?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
