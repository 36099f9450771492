//! The `mail_deliveries` records: each email Caseport hands to a provider, to whom, for what,
//! the provider's id and how it went — never its content. The case manager's answer to "did
//! the email arrive?" is read from here.

use serde_json::json;

use crate::ctx::Ctx;
use crate::domain::Email;
use crate::mail::{self, Event, EventStatus, MailSettings, Message, Provider, Transport};
use crate::ports::{Db, StorageError, transaction};

/// A random id for a delivery, sent to the provider as metadata so webhooks find it.
pub fn new_public_id() -> Result<String, StorageError> {
    let bytes = crate::ports::random_bytes::<12>()?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Records that an email is being handed to the provider (`sending`); answers the row's id.
pub fn insert(
    ctx: &Ctx<'_>,
    mail: &MailSettings,
    public_id: &str,
    client_id: Option<i64>,
    purpose: &str,
    to: &Email,
) -> Result<i64, StorageError> {
    let now = ctx.clock.now().to_string();
    ctx.db
        .execute(
            "INSERT INTO mail_deliveries (clinic_id, public_id, client_id, purpose, provider, to_address, status, created_at, updated_at)
             VALUES (?1, ?, ?, ?, ?, ?, 'sending', ?, ?) RETURNING id",
            &[public_id.into(), client_id.into(), purpose.into(), mail.provider.as_str().into(), to.as_ref().into(), now.as_str().into(), now.as_str().into()],
        )?
        .first()
        .and_then(|r| r.int(0))
        .ok_or_else(|| StorageError::new("no delivery id"))
}

/// Records how the hand-over ended: accepted with the provider's message id (delivered, for
/// the local mailbox, which is the destination), or failed with the reason. A status a
/// webhook has already moved is kept.
pub fn record_outcome(
    ctx: &Ctx<'_>,
    mail: &MailSettings,
    delivery_id: i64,
    sent: &Result<&mail::Sent, &mail::Failure>,
) -> Result<(), StorageError> {
    let now = ctx.clock.now().to_string();
    match sent {
        Ok(sent) => {
            let (status, detail) = if mail.provider == Provider::DevMailbox {
                (
                    "delivered",
                    Some("Captured by the local mailbox (nothing leaves this computer)."),
                )
            } else {
                ("accepted", None)
            };
            ctx.db.execute(
                "UPDATE mail_deliveries SET status = CASE WHEN status = 'sending' THEN ?2 ELSE status END,
                 provider_message_id = ?3, detail = coalesce(detail, ?4), attempts = ?5, updated_at = ?6 WHERE clinic_id = ?1 AND id = ?",
                &[status.into(), sent.message_id.as_str().into(), detail.map(str::to_string).into(), i64::from(sent.attempts).into(), now.into(), delivery_id.into()],
            )?;
        }
        Err(failure) => {
            ctx.db.execute(
                "UPDATE mail_deliveries SET status = 'failed', detail = ?2, attempts = ?3, updated_at = ?4 WHERE clinic_id = ?1 AND id = ?",
                &[failure.reason.as_str().into(), i64::from(failure.attempts).into(), now.into(), delivery_id.into()],
            )?;
        }
    }
    Ok(())
}

/// The client signed in with the emailed password: the email evidently arrived.
pub fn mark_arrived(db: &dyn Db, delivery_id: i64, now: &str) -> Result<(), StorageError> {
    db.execute(
        "UPDATE mail_deliveries SET status = 'delivered', detail = 'The client signed in with the emailed password, so the email arrived.', updated_at = ?2
         WHERE clinic_id = ?1 AND id = ? AND status IN ('sending', 'accepted')",
        &[now.into(), delivery_id.into()],
    )?;
    Ok(())
}

/// Where a delivery went: its public id and address.
pub fn public_id_and_address(
    db: &dyn Db,
    delivery_id: i64,
) -> Result<Option<(String, String)>, StorageError> {
    Ok(db
        .execute(
            "SELECT public_id, to_address FROM mail_deliveries WHERE clinic_id = ?1 AND id = ?",
            &[delivery_id.into()],
        )?
        .first()
        .and_then(|r| Some((r.text(0)?.to_string(), r.text(1)?.to_string()))))
}

/// A delivery a provider's event is about.
pub struct Found {
    pub id: i64,
    pub public_id: String,
    pub client_id: Option<i64>,
    pub status: String,
    pub to: String,
    /// Whose email it was: the webhook that reports it is the deployment's, not a clinic's.
    pub clinic: crate::clinics::ClinicId,
}

/// The delivery `event` of `provider` is about, by Caseport's id or the provider's, in any
/// clinic (`db` unscoped).
pub fn find_for_event(
    db: &dyn Db,
    provider: Provider,
    event: &Event,
) -> Result<Option<Found>, StorageError> {
    let rows = db.execute(
        "SELECT id, public_id, client_id, status, to_address, clinic_id FROM mail_deliveries
         WHERE provider = ? AND (public_id = ? OR provider_message_id = ?) LIMIT 1",
        &[
            provider.as_str().into(),
            event.delivery_id.clone().into(),
            event.message_id.clone().into(),
        ],
    )?;
    Ok(rows.first().map(|r| Found {
        id: r.int(0).unwrap_or_default(),
        public_id: r.text(1).unwrap_or_default().to_string(),
        client_id: r.int(2),
        status: r.text(3).unwrap_or_default().to_string(),
        to: r.text(4).unwrap_or_default().to_string(),
        clinic: crate::clinics::ClinicId(r.int(5).unwrap_or_default()),
    }))
}

/// Moves a delivery by a provider's event (a later `delivered` does not undo a bounce or a
/// failure) and keeps the event in its history.
pub fn apply_event(ctx: &Ctx<'_>, found: &Found, event: &Event) -> Result<(), StorageError> {
    let next = match (found.status.as_str(), event.status) {
        ("bounced" | "failed", EventStatus::Delivered) => found.status.as_str(),
        (_, s) => s.as_str(),
    };
    let record = json!({ "event": event.kind, "at": event.at, "detail": event.detail });
    ctx.db.execute(
        "UPDATE mail_deliveries SET status = ?2, detail = coalesce(?3, detail), events = json_insert(events, '$[#]', json(?4)), updated_at = ?5 WHERE clinic_id = ?1 AND id = ?",
        &[next.into(), event.detail.clone().into(), record.to_string().into(), ctx.clock.now().to_string().into(), found.id.into()],
    )?;
    Ok(())
}

/// What a recorded send is for, as `mail_deliveries` and the audit log name it.
pub struct Recorded<'a> {
    /// `temporary_password` or `reset_link`.
    pub purpose: &'static str,
    pub client_id: Option<i64>,
    pub to: &'a Email,
    /// The audit subject (`client:…`, `staff:…`) and actor.
    pub subject: &'a str,
    pub actor: &'a str,
    /// The audit actions of a sent and of a failed email.
    pub sent_action: &'static str,
    pub failed_action: &'static str,
}

/// Sends one email and records it here (to whom, the provider's id, the outcome) and in the
/// audit log. `compose` gets the delivery's public id.
pub fn send_recorded(
    ctx: &Ctx<'_>,
    mail: &MailSettings,
    transport: &dyn Transport,
    what: &Recorded<'_>,
    compose: impl FnOnce(&str) -> Message,
) -> Result<Result<mail::Sent, mail::Failure>, StorageError> {
    let public_id = new_public_id()?;
    let delivery_id = transaction(ctx.db, || {
        insert(ctx, mail, &public_id, what.client_id, what.purpose, what.to)
    })?;
    let message = compose(&public_id);
    let sent = mail::deliver(transport, mail, &message);
    drop(message);
    transaction(ctx.db, || {
        record_outcome(ctx, mail, delivery_id, &sent.as_ref())?;
        ctx.audit(
            what.actor,
            if sent.is_ok() {
                what.sent_action
            } else {
                what.failed_action
            },
            Some(what.subject),
            json!({ "delivery_id": public_id, "sent_to": what.to.as_ref(), "reason": sent.as_ref().err().map(|f| f.reason.clone()) }),
        )
    })?;
    Ok(sent)
}
