//! The `portal_resets` records of Reset and Send New: one row per reset (emailed, shown once
//! or set by an administrator), keyed by its idempotency key; an emailed one parks the new
//! password's hash (`pending_phc`) until the provider has the email. Completing a parked
//! reset, claiming it at sign-in, and the last reset that Client Information shows live here.

use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::credentials;
use crate::ctx::Ctx;
use crate::deliveries;
use crate::domain::{Account, AccountKind, Password};
use crate::passwords::{self, Check};
use crate::ports::{Db, StorageError, Value, transaction};

/// A reset row, as the rules read it back.
pub struct ResetRow {
    pub id: i64,
    pub client_id: i64,
    pub status: String,
    pub username: String,
    pub pending_phc: Option<String>,
    pub temp_expires_at: Option<String>,
    pub mail_delivery_id: Option<i64>,
    pub answer_status: Option<i64>,
    pub answer: Option<String>,
    pub started_at: i64,
}

const COLUMNS: &str = "id, client_id, status, username, pending_phc, temp_expires_at, mail_delivery_id, answer_status, answer, started_at";

fn rows(db: &dyn Db, filter: &str, params: &[Value]) -> Result<Vec<ResetRow>, StorageError> {
    let rows = db.execute(
        &format!("SELECT {COLUMNS} FROM portal_resets WHERE clinic_id = ?1 AND {filter}"),
        params,
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(ResetRow {
                id: r.int(0)?,
                client_id: r.int(1)?,
                status: r.text(2)?.to_string(),
                username: r.text(3)?.to_string(),
                pending_phc: r.text(4).map(str::to_string),
                temp_expires_at: r.text(5).map(str::to_string),
                mail_delivery_id: r.int(6),
                answer_status: r.int(7),
                answer: r.text(8).map(str::to_string),
                started_at: r.int(9)?,
            })
        })
        .collect())
}

/// The reset of `client_id` with this idempotency key.
pub fn by_key(db: &dyn Db, client_id: i64, key: &str) -> Result<Option<ResetRow>, StorageError> {
    Ok(rows(
        db,
        "client_id = ? AND idempotency_key = ?",
        &[client_id.into(), key.into()],
    )?
    .pop())
}

/// The reset with this id.
pub fn by_id(db: &dyn Db, id: i64) -> Result<Option<ResetRow>, StorageError> {
    Ok(rows(db, "id = ?", &[id.into()])?.pop())
}

/// The client's newest emailed reset that is sending or sent, with its email's status and
/// address and who asked for it, for the busy check.
pub struct LatestEmailed {
    pub pending: bool,
    pub started_at: i64,
    pub requested_by: i64,
    pub mail_status: Option<String>,
    pub to: Option<String>,
}

/// See [`LatestEmailed`].
pub fn latest_emailed(db: &dyn Db, client_id: i64) -> Result<Option<LatestEmailed>, StorageError> {
    let rows = db.execute(
        "SELECT r.status, r.started_at, r.requested_by, d.status, d.to_address
         FROM portal_resets r LEFT JOIN mail_deliveries d ON d.id = r.mail_delivery_id
         WHERE r.clinic_id = ?1 AND r.client_id = ? AND r.delivery = 'email' AND r.status IN ('pending', 'sent')
         ORDER BY r.id DESC LIMIT 1",
        &[client_id.into()],
    )?;
    Ok(rows.first().map(|r| LatestEmailed {
        pending: r.text(0) == Some("pending"),
        started_at: r.int(1).unwrap_or_default(),
        requested_by: r.int(2).unwrap_or_default(),
        mail_status: r.text(3).map(str::to_string),
        to: r.text(4).map(str::to_string),
    }))
}

/// Ends the client's parked resets: their passwords will never work.
pub fn supersede_pending(db: &dyn Db, client_id: i64) -> Result<(), StorageError> {
    db.execute(
        "UPDATE portal_resets SET status = 'superseded', pending_phc = NULL WHERE clinic_id = ?1 AND client_id = ? AND status = 'pending'",
        &[client_id.into()],
    )?;
    Ok(())
}

/// A new reset row.
pub struct NewReset<'a> {
    pub client_id: i64,
    pub idempotency_key: &'a str,
    pub requested_by: i64,
    /// `email`, `display` or `admin_set`.
    pub delivery: &'static str,
    /// `pending` (parked until the email is out), `shown` or `set`.
    pub status: &'static str,
    pub username: &'a str,
    pub pending_phc: Option<&'a str>,
    pub temp_expires_at: Option<&'a str>,
    pub mail_delivery_id: Option<i64>,
    /// The answer, when it is final at once (shown, set).
    pub answer_status: Option<i64>,
    pub started_at: i64,
}

/// Inserts a reset row; answers its id.
pub fn insert(ctx: &Ctx<'_>, new: &NewReset<'_>) -> Result<i64, StorageError> {
    ctx.db
        .execute(
            "INSERT INTO portal_resets (clinic_id, client_id, idempotency_key, requested_by, delivery, status, username, pending_phc, temp_expires_at, mail_delivery_id, answer_status, created_at, started_at)
             VALUES (?1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            &[
                new.client_id.into(),
                new.idempotency_key.into(),
                new.requested_by.into(),
                new.delivery.into(),
                new.status.into(),
                new.username.into(),
                new.pending_phc.map(str::to_string).into(),
                new.temp_expires_at.map(str::to_string).into(),
                new.mail_delivery_id.into(),
                new.answer_status.into(),
                ctx.clock.now().to_string().into(),
                new.started_at.into(),
            ],
        )?
        .first()
        .and_then(|r| r.int(0))
        .ok_or_else(|| StorageError::new("no reset id"))
}

/// Keeps the answer of a sent reset, for a repeat of its key.
pub fn keep_answer(
    db: &dyn Db,
    reset_id: i64,
    status: u16,
    answer: &Json,
) -> Result<(), StorageError> {
    db.execute(
        "UPDATE portal_resets SET answer_status = ?2, answer = ?3 WHERE clinic_id = ?1 AND id = ?",
        &[
            i64::from(status).into(),
            answer.to_string().into(),
            reset_id.into(),
        ],
    )?;
    Ok(())
}

/// A parked reset whose email failed: its password is dropped, its answer kept.
pub fn fail(db: &dyn Db, reset_id: i64, status: u16, answer: &Json) -> Result<(), StorageError> {
    db.execute(
        "UPDATE portal_resets SET status = 'failed', pending_phc = NULL, answer_status = ?2, answer = ?3
         WHERE clinic_id = ?1 AND id = ? AND status = 'pending'",
        &[i64::from(status).into(), answer.to_string().into(), reset_id.into()],
    )?;
    Ok(())
}

/// Step 3 of a successful send, inside a transaction: the parked password becomes the
/// credential. Does nothing (and answers false) if the reset is no longer pending.
pub fn complete(
    ctx: &Ctx<'_>,
    reset_id: i64,
    actor: &str,
    detail: Json,
) -> Result<bool, StorageError> {
    let Some(r) = by_id(ctx.db, reset_id)? else {
        return Ok(false);
    };
    let (true, Some(phc)) = (r.status == "pending", r.pending_phc.as_deref()) else {
        return Ok(false);
    };
    credentials::install_portal(
        ctx,
        r.client_id,
        &r.username,
        phc,
        true,
        r.temp_expires_at.as_deref(),
    )?;
    ctx.db.execute(
        "UPDATE portal_resets SET status = 'sent', pending_phc = NULL WHERE clinic_id = ?1 AND id = ?",
        &[reset_id.into()],
    )?;
    let mut detail = detail;
    if let (Json::Object(map), Some(d)) = (&mut detail, r.mail_delivery_id) {
        if let Some((public_id, to)) = deliveries::public_id_and_address(ctx.db, d)? {
            map.insert("delivery_id".into(), json!(public_id));
            map.insert("sent_to".into(), json!(to));
        }
        map.insert("username".into(), json!(r.username));
        map.insert("expires_at".into(), json!(r.temp_expires_at));
    }
    ctx.audit(
        actor,
        "portal_password_reset",
        Some(&format!("client:{}", r.client_id)),
        detail,
    )?;
    Ok(true)
}

/// The parked resets waiting on the email of delivery `delivery_id`.
pub fn pending_for_delivery(db: &dyn Db, delivery_id: i64) -> Result<Vec<ResetRow>, StorageError> {
    rows(
        db,
        "mail_delivery_id = ? AND status = 'pending'",
        &[delivery_id.into()],
    )
}

/// Ends a parked reset whose email bounced or failed.
pub fn end_undelivered(db: &dyn Db, reset_id: i64) -> Result<(), StorageError> {
    db.execute(
        "UPDATE portal_resets SET status = 'failed', pending_phc = NULL WHERE clinic_id = ?1 AND id = ?",
        &[reset_id.into()],
    )?;
    Ok(())
}

/// At sign-in: whether `typed` is the parked password of an interrupted emailed reset for
/// `username`. If it is, the email evidently arrived: the reset completes now and the
/// account is the client's. Costs a hash check only when such a reset exists.
pub fn claim_parked(
    ctx: &Ctx<'_>,
    username: &str,
    typed: &Password,
) -> Result<Option<Account>, StorageError> {
    let parked = rows(
        ctx.db,
        "status = 'pending' AND username = ? AND pending_phc IS NOT NULL ORDER BY id DESC LIMIT 3",
        &[username.into()],
    )?;
    let now = ctx.clock.now();
    let canonical = Password::new(passwords::temporary_canonical(typed.expose()));
    for r in parked {
        let expired = r
            .temp_expires_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .is_none_or(|t| t <= now);
        let Some(phc) = r.pending_phc.as_deref() else {
            continue;
        };
        if expired || passwords::verify(phc, &canonical)? == Check::Wrong {
            continue;
        }
        let done = transaction(ctx.db, || {
            if let Some(d) = r.mail_delivery_id {
                deliveries::mark_arrived(ctx.db, d, &now.to_string())?;
            }
            complete(
                ctx,
                r.id,
                &format!("client:{}", r.client_id),
                json!({ "completed_by": "sign_in_with_emailed_password" }),
            )
        })?;
        if done {
            return Ok(Some(Account {
                kind: AccountKind::Client,
                id: r.client_id,
            }));
        }
    }
    Ok(None)
}

/// The last reset of a client, for Client Information.
#[derive(Debug, Serialize)]
pub struct LastReset {
    pub at: String,
    pub by: String,
    pub delivery: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The newest reset of `client_id`, with where its email got to. A send still parked after
/// `stale_seconds` (the longest a send can take) was interrupted.
pub fn last_reset(
    db: &dyn Db,
    client_id: i64,
    now: i64,
    stale_seconds: i64,
) -> Result<Option<LastReset>, StorageError> {
    let rows = db.execute(
        "SELECT r.created_at, s.display_name, r.delivery, r.status, r.started_at, d.to_address, d.status, d.detail
         FROM portal_resets r JOIN staff s ON s.id = r.requested_by
         LEFT JOIN mail_deliveries d ON d.id = r.mail_delivery_id
         WHERE r.clinic_id = ?1 AND r.client_id = ? ORDER BY r.id DESC LIMIT 1",
        &[client_id.into()],
    )?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let status = r.text(3).unwrap_or_default();
    let mut mail_status = r.text(6).map(str::to_string);
    let mut detail = r.text(7).map(str::to_string);
    if status == "superseded"
        || (status == "pending" && now - r.int(4).unwrap_or_default() >= stale_seconds)
    {
        detail = Some("The send was interrupted before the mail service answered. The email may not have arrived; if the client did not get it, reset again.".into());
        if mail_status.as_deref() == Some("sending") {
            mail_status = Some("failed".into());
        }
    }
    Ok(Some(LastReset {
        at: r.text(0).unwrap_or_default().to_string(),
        by: r.text(1).unwrap_or_default().to_string(),
        delivery: r.text(2).unwrap_or_default().to_string(),
        sent_to: r.text(5).map(str::to_string),
        mail_status,
        detail,
    }))
}
