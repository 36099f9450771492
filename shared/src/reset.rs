//! Reset and Send New: a new temporary password for a client's portal account, emailed (the
//! AccuCare way) or shown once (the Office Practicum way); the administrator's set password;
//! emailed reset links; and the providers' delivery events.
//!
//! The order that keeps DESIGN.md's invariants, even if the component is stopped halfway:
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

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::api_error::ApiError;
use crate::audit;
use crate::auth::Ctx;
use crate::clients::{self, check_email};
use crate::domain::{Account, AccountKind, Email, Password, Role};
use crate::mail::{self, EventStatus, MailSettings, Provider, Transport};
use crate::passwords::{self, Check};
use crate::policy;
use crate::ports::{Db, StorageError, transaction};
use crate::throttle;
use crate::tokens;

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

fn load_client(db: &dyn Db, id: i64) -> Result<Option<ClientRow>, StorageError> {
    let rows = db.execute(
        "SELECT first_name, last_name, email FROM clients WHERE id = ?",
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

/// A random id for a delivery, sent to the provider as metadata.
fn new_public_id() -> Result<String, StorageError> {
    let bytes = crate::ports::random_bytes::<12>()?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn staff_name(db: &dyn Db, id: i64) -> Result<String, StorageError> {
    Ok(db
        .execute("SELECT display_name FROM staff WHERE id = ?", &[id.into()])?
        .first()
        .and_then(|r| r.text(0).map(str::to_string))
        .unwrap_or_else(|| "Someone".into()))
}

/// The client's portal username, if the client has an account.
fn portal_username(db: &dyn Db, client_id: i64) -> Result<Option<String>, StorageError> {
    Ok(db
        .execute(
            "SELECT username FROM credentials WHERE owner_kind = 'client' AND owner_id = ?",
            &[client_id.into()],
        )?
        .first()
        .and_then(|r| r.text(0).map(str::to_string)))
}

/// Whether another client's portal account already uses (or is about to use) `username`.
fn username_taken(db: &dyn Db, client_id: i64, username: &str) -> Result<bool, StorageError> {
    Ok(db
        .execute(
            "SELECT 1 FROM credentials WHERE owner_kind = 'client' AND username = ? AND owner_id != ?
             UNION ALL
             SELECT 1 FROM portal_resets WHERE status = 'pending' AND username = ? AND client_id != ?",
            &[
                username.into(),
                client_id.into(),
                username.into(),
                client_id.into(),
            ],
        )?
        .first()
        .is_some())
}

/// The portal username after this reset. An emailed reset makes the address the mail goes
/// to the username (a corrected address is what the client will type), unless another
/// client — a sibling sharing a parent's address — has it. Otherwise the current username
/// stays; a new account gets the email, or `first.last` (with a number if needed).
fn choose_username(
    db: &dyn Db,
    client_id: i64,
    client: &ClientRow,
    sent_to: Option<&Email>,
) -> Result<String, StorageError> {
    if let Some(email) = sent_to
        && !username_taken(db, client_id, email.as_ref())?
    {
        return Ok(email.to_string());
    }
    let current = portal_username(db, client_id)?;
    if let Some(current) = current {
        return Ok(current);
    }
    if let Some(email) = client.email.as_deref().and_then(|e| Email::parse(e).ok())
        && !username_taken(db, client_id, email.as_ref())?
    {
        return Ok(email.to_string());
    }
    let base: String = format!("{}.{}", client.first_name, client.last_name)
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let base = if base.trim_matches('.').is_empty() {
        format!("client{client_id}")
    } else {
        base
    };
    for n in 1..1000 {
        let candidate = if n == 1 {
            base.clone()
        } else {
            format!("{base}{n}")
        };
        if !username_taken(db, client_id, &candidate)? {
            return Ok(candidate);
        }
    }
    Ok(format!("client{client_id}"))
}

/// Makes `phc` the client's portal credential (creating the account if there is none),
/// ends its sessions and unused links, and lifts a lockout.
fn install_credential(
    ctx: &Ctx<'_>,
    client_id: i64,
    username: &str,
    phc: &str,
    must_change: bool,
    temp_expires_at: Option<&str>,
) -> Result<(), StorageError> {
    let now = ctx.clock.now().to_string();
    let account = Account {
        kind: AccountKind::Client,
        id: client_id,
    };
    let previous = portal_username(ctx.db, client_id)?;
    let params = [
        username.into(),
        phc.into(),
        i64::from(must_change).into(),
        temp_expires_at.map(str::to_string).into(),
        now.into(),
        client_id.into(),
    ];
    match &previous {
        Some(old) => {
            ctx.db.execute(
                "UPDATE credentials SET username = ?, phc = ?, must_change = ?, temp_expires_at = ?, changed_at = ?
                 WHERE owner_kind = 'client' AND owner_id = ?",
                &params,
            )?;
            tokens::revoke_all_sessions(ctx.db, account)?;
            tokens::drop_one_time_tokens(ctx.db, account)?;
            throttle::clear(
                ctx.db,
                &throttle::key("account", &format!("client:{}", old.to_lowercase())),
            )?;
        }
        None => {
            ctx.db.execute(
                "INSERT INTO credentials (username, phc, must_change, temp_expires_at, changed_at, owner_kind, owner_id)
                 VALUES (?, ?, ?, ?, ?, 'client', ?)",
                &params,
            )?;
        }
    }
    throttle::clear(
        ctx.db,
        &throttle::key("account", &format!("client:{}", username.to_lowercase())),
    )
}

/// A reset row, as the rules read it back.
struct ResetRow {
    id: i64,
    client_id: i64,
    status: String,
    username: String,
    pending_phc: Option<String>,
    temp_expires_at: Option<String>,
    mail_delivery_id: Option<i64>,
    answer_status: Option<i64>,
    answer: Option<String>,
    started_at: i64,
}

const RESET_COLUMNS: &str = "id, client_id, status, username, pending_phc, temp_expires_at, mail_delivery_id, answer_status, answer, started_at";

fn reset_rows(
    db: &dyn Db,
    sql: &str,
    params: &[crate::ports::Value],
) -> Result<Vec<ResetRow>, StorageError> {
    let rows = db.execute(sql, params)?;
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

fn by_key(db: &dyn Db, client_id: i64, key: &str) -> Result<Option<ResetRow>, StorageError> {
    Ok(reset_rows(
        db,
        &format!(
            "SELECT {RESET_COLUMNS} FROM portal_resets WHERE client_id = ? AND idempotency_key = ?"
        ),
        &[client_id.into(), key.into()],
    )?
    .pop())
}

fn by_id(db: &dyn Db, id: i64) -> Result<Option<ResetRow>, StorageError> {
    Ok(reset_rows(
        db,
        &format!("SELECT {RESET_COLUMNS} FROM portal_resets WHERE id = ?"),
        &[id.into()],
    )?
    .pop())
}

/// Refuses a new reset while another is sending, or (`recent`) just after a successful one.
fn check_not_busy(ctx: &Ctx<'_>, client_id: i64, now: i64, recent: bool) -> Result<(), ApiError> {
    let rows = ctx.db.execute(
        "SELECT r.status, r.started_at, r.requested_by, d.status, d.to_address
         FROM portal_resets r LEFT JOIN mail_deliveries d ON d.id = r.mail_delivery_id
         WHERE r.client_id = ? AND r.delivery = 'email' AND r.status IN ('pending', 'sent')
         ORDER BY r.id DESC LIMIT 1",
        &[client_id.into()],
    )?;
    let Some(r) = rows.first() else {
        return Ok(());
    };
    let started = r.int(1).unwrap_or_default();
    let who = staff_name(ctx.db, r.int(2).unwrap_or_default())?;
    if r.text(0) == Some("pending") && now - started < ctx.settings.mail_stale_seconds() {
        return Err(ApiError {
            retry_after: Some(5),
            ..ApiError::new(
                409,
                "reset_in_progress",
                format!(
                    "{who} is sending this client a new temporary password right now. Wait a moment, then reload to see how it went."
                ),
            )
        });
    }
    let mail_ok = matches!(r.text(3), Some("sending" | "accepted" | "delivered"));
    if recent && r.text(0) == Some("sent") && mail_ok && now - started < RECENT_SECONDS {
        let to = r
            .text(4)
            .and_then(|e| Email::parse(e).ok())
            .map(|e| mail::masked(&e))
            .unwrap_or_default();
        let wait = RECENT_SECONDS - (now - started);
        return Err(ApiError {
            retry_after: Some(wait as u64),
            ..ApiError::new(
                409,
                "recently_reset",
                format!(
                    "{who} sent this client a new temporary password to {to} {} seconds ago. Ask the client to check their inbox and spam folder; you can send another in {wait} seconds.",
                    now - started
                ),
            )
        });
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

/// `POST /api/clients/:id/portal-password/reset`.
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
    if let Some(first) = by_key(ctx.db, client_id, &key)? {
        return repeat(ctx, transport, first);
    }
    let client = load_client(ctx.db, client_id)?.ok_or_else(ApiError::not_found)?;
    // Fail closed: with no provider nothing is "sent", and nothing changes.
    let sent_to = match (delivery, mail) {
        (Delivery::Display, _) => None,
        (Delivery::Email, None) => {
            return Err(ApiError::mail_not_configured(format!(
                "The temporary password cannot be emailed. {} Nothing was changed; show the password once instead (Other ways).",
                mail::NOT_CONFIGURED
            )));
        }
        (Delivery::Email, Some(mail)) => Some((email_to_use(&client)?, mail)),
    };
    let temporary = passwords::temporary()?;
    let phc = passwords::hash(&passwords::temporary_canonical(temporary.expose()))?;
    let now = ctx.clock.now().as_second();
    let expires_at = ts(now + ctx.settings.temp_password_ttl_hours * 3600);
    let public_id = new_public_id()?;
    let subject = format!("client:{client_id}");
    let actor = staff.label();

    let start = transaction(ctx.db, || -> Result<Start, ApiError> {
        if let Some(first) = by_key(ctx.db, client_id, &key)? {
            return Ok(Start::Repeat(first));
        }
        check_not_busy(ctx, client_id, now, true)?;
        // An interrupted earlier send is over: its parked password will never work.
        ctx.db.execute(
            "UPDATE portal_resets SET status = 'superseded', pending_phc = NULL WHERE client_id = ? AND status = 'pending'",
            &[client_id.into()],
        )?;
        let username = choose_username(
            ctx.db,
            client_id,
            &client,
            sent_to.as_ref().map(|(to, _)| to),
        )?;
        let created_at = ctx.clock.now().to_string();
        match (&sent_to, delivery) {
            (Some((to, mail)), Delivery::Email) => {
                let delivery_id = insert_delivery(
                    ctx,
                    mail,
                    &public_id,
                    Some(client_id),
                    "temporary_password",
                    to,
                )?;
                let reset_id = ctx
                    .db
                    .execute(
                        "INSERT INTO portal_resets (client_id, idempotency_key, requested_by, delivery, status, username, pending_phc, temp_expires_at, mail_delivery_id, created_at, started_at)
                         VALUES (?, ?, ?, 'email', 'pending', ?, ?, ?, ?, ?, ?) RETURNING id",
                        &[client_id.into(), key.as_str().into(), staff.id.into(), username.as_str().into(), phc.as_str().into(), expires_at.as_str().into(), delivery_id.into(), created_at.as_str().into(), now.into()],
                    )?
                    .first()
                    .and_then(|r| r.int(0))
                    .ok_or_else(|| StorageError("no reset id".into()))?;
                audit::record(
                    ctx.db,
                    ctx.clock,
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
            _ => {
                install_credential(ctx, client_id, &username, &phc, true, Some(&expires_at))?;
                ctx.db.execute(
                    "INSERT INTO portal_resets (client_id, idempotency_key, requested_by, delivery, status, username, temp_expires_at, answer_status, created_at, started_at)
                     VALUES (?, ?, ?, 'display', 'shown', ?, ?, 200, ?, ?)",
                    &[client_id.into(), key.as_str().into(), staff.id.into(), username.as_str().into(), expires_at.as_str().into(), created_at.as_str().into(), now.into()],
                )?;
                audit::record(
                    ctx.db,
                    ctx.clock,
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
            .map(|t| mail::human_time(t, &ctx.settings.clinic_timezone))
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
                record_outcome(ctx, mail, delivery_id, &Ok(&sent))?;
                ctx.db.execute(
                    "UPDATE portal_resets SET answer_status = 200, answer = ? WHERE id = ?",
                    &[body.to_string().into(), reset_id.into()],
                )?;
                complete(ctx, reset_id, &actor, json!({ "attempts": sent.attempts }))
            })?;
            Ok(Outcome::Json { status: 200, body })
        }
        Err(failure) => {
            let error = ApiError::new(
                502,
                "mail_failed",
                format!(
                    "The email was not sent: {} The client's previous password still works.",
                    failure.reason
                ),
            );
            let body: Json = serde_json::from_str(&error.to_json()).unwrap_or(Json::Null);
            transaction(ctx.db, || {
                record_outcome(ctx, mail, delivery_id, &Err(&failure))?;
                ctx.db.execute(
                    "UPDATE portal_resets SET status = 'failed', pending_phc = NULL, answer_status = 502, answer = ?
                     WHERE id = ? AND status = 'pending'",
                    &[body.to_string().into(), reset_id.into()],
                )?;
                audit::record(
                    ctx.db,
                    ctx.clock,
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
        return Err(ApiError {
            field: Some("email".into()),
            ..ApiError::new(
                422,
                "no_email",
                "This client has no email address. Add one in Client Information, or show the temporary password once instead.",
            )
        });
    };
    let check = check_email(Some(raw));
    if !check.ok {
        let mut message = format!(
            "The email address {raw} looks wrong: {}",
            check.reason.unwrap_or_default()
        );
        if let Some(s) = check.suggestion {
            message.push_str(&format!(" Did you mean {s}?"));
        }
        message.push_str(" Correct it in Client Information, then send again.");
        return Err(ApiError {
            field: Some("email".into()),
            ..ApiError::new(422, "email_invalid", message)
        });
    }
    Email::parse(raw).map_err(|m| ApiError {
        field: Some("email".into()),
        ..ApiError::new(422, "email_invalid", m)
    })
}

/// Step 3 of a successful send, inside a transaction: the parked password becomes the
/// credential. Does nothing if the reset is no longer pending.
fn complete(ctx: &Ctx<'_>, reset_id: i64, actor: &str, detail: Json) -> Result<bool, StorageError> {
    let Some(r) = by_id(ctx.db, reset_id)? else {
        return Ok(false);
    };
    let (true, Some(phc)) = (r.status == "pending", r.pending_phc.as_deref()) else {
        return Ok(false);
    };
    install_credential(
        ctx,
        r.client_id,
        &r.username,
        phc,
        true,
        r.temp_expires_at.as_deref(),
    )?;
    ctx.db.execute(
        "UPDATE portal_resets SET status = 'sent', pending_phc = NULL WHERE id = ?",
        &[reset_id.into()],
    )?;
    let mut detail = detail;
    if let (Json::Object(map), Some(d)) = (&mut detail, r.mail_delivery_id) {
        let row = ctx.db.execute(
            "SELECT public_id, to_address FROM mail_deliveries WHERE id = ?",
            &[d.into()],
        )?;
        if let Some(row) = row.first() {
            map.insert("delivery_id".into(), json!(row.text(0)));
            map.insert("sent_to".into(), json!(row.text(1)));
        }
        map.insert("username".into(), json!(r.username));
        map.insert("expires_at".into(), json!(r.temp_expires_at));
    }
    audit::record(
        ctx.db,
        ctx.clock,
        actor,
        "portal_password_reset",
        Some(&format!("client:{}", r.client_id)),
        detail,
    )?;
    Ok(true)
}

/// The answer to a repeated idempotency key: the first answer, never a second email.
fn repeat(ctx: &Ctx<'_>, transport: &dyn Transport, first: ResetRow) -> Result<Outcome, ApiError> {
    let mut row = first;
    let mut waited = 0;
    while row.status == "pending"
        && ctx.clock.now().as_second() - row.started_at < ctx.settings.mail_stale_seconds()
        && waited < REPLAY_WAIT_SECONDS * 10
    {
        transport.sleep(std::time::Duration::from_millis(100));
        waited += 1;
        row = by_id(ctx.db, row.id)?.ok_or_else(ApiError::internal)?;
    }
    match (row.status.as_str(), row.answer_status, row.answer) {
        ("shown", _, _) => Err(ApiError::new(
            409,
            "already_shown",
            "This temporary password was shown once and is not shown again. If it was lost, reset the password again.",
        )),
        ("pending", _, _)
            if ctx.clock.now().as_second() - row.started_at < ctx.settings.mail_stale_seconds() =>
        {
            Err(ApiError {
                retry_after: Some(5),
                ..ApiError::new(
                    409,
                    "reset_in_progress",
                    "This reset is still being sent. Wait a moment, then reload to see how it went.",
                )
            })
        }
        (_, Some(status), Some(answer)) => Ok(Outcome::Json {
            status: u16::try_from(status).unwrap_or(500),
            body: serde_json::from_str(&answer).unwrap_or(Json::Null),
        }),
        _ => Err(ApiError::new(
            409,
            "reset_interrupted",
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
            403,
            "forbidden",
            "Only an administrator can set a client's password. Use Reset and Send New instead.",
        ));
    }
    let client = load_client(ctx.db, client_id)?.ok_or_else(ApiError::not_found)?;
    if req.password != req.password_confirm {
        return Err(ApiError {
            field: Some("password_confirm".into()),
            ..ApiError::new(
                422,
                "passwords_differ",
                "The two passwords are not the same. Type the password again in both boxes.",
            )
        });
    }
    let password = Password::new(req.password.clone());
    let now = ctx.clock.now().as_second();
    let current_username = portal_username(ctx.db, client_id)?;
    let mut words: Vec<String> = vec![client.first_name.clone(), client.last_name.clone()];
    for address in [client.email.clone(), current_username]
        .into_iter()
        .flatten()
    {
        if let Some((local, _)) = address.split_once('@') {
            words.push(local.to_string());
        }
        words.push(address);
    }
    let context = policy::Context {
        own_words: words.iter().map(String::as_str).collect(),
        equals_temporary: false,
    };
    policy::check(
        password.expose(),
        ctx.settings.password_min_length,
        &context,
    )
    .map_err(|w| ApiError {
        field: Some("password".into()),
        ..ApiError::new(422, "weak_password", w.0)
    })?;
    let phc = passwords::hash(password.expose())?;
    let key = format!("admin-set-{}", new_public_id()?);
    let username = transaction(ctx.db, || {
        check_not_busy(ctx, client_id, now, false)?;
        ctx.db.execute(
            "UPDATE portal_resets SET status = 'superseded', pending_phc = NULL WHERE client_id = ? AND status = 'pending'",
            &[client_id.into()],
        )?;
        let username = choose_username(ctx.db, client_id, &client, None)?;
        install_credential(ctx, client_id, &username, &phc, req.reset_required, None)?;
        ctx.db.execute(
            "INSERT INTO portal_resets (client_id, idempotency_key, requested_by, delivery, status, username, answer_status, created_at, started_at)
             VALUES (?, ?, ?, 'admin_set', 'set', ?, 200, ?, ?)",
            &[client_id.into(), key.as_str().into(), staff.id.into(), username.as_str().into(), ctx.clock.now().to_string().into(), now.into()],
        )?;
        audit::record(
            ctx.db,
            ctx.clock,
            &staff.label(),
            "portal_password_set",
            Some(&format!("client:{client_id}")),
            json!({ "delivery": "admin_set", "username": username, "reset_required": req.reset_required }),
        )?;
        Ok::<_, ApiError>(username)
    })?;
    Ok(json!({ "status": "set", "username": username, "reset_required": req.reset_required }))
}

/// At sign-in: whether `typed` is the parked password of an interrupted emailed reset for
/// `username`. If it is, the email evidently arrived: the reset completes now and the
/// account is the client's. Costs a hash check only when such a reset exists.
pub fn claim_parked(
    ctx: &Ctx<'_>,
    username: &str,
    typed: &Password,
) -> Result<Option<Account>, StorageError> {
    let parked = reset_rows(
        ctx.db,
        &format!(
            "SELECT {RESET_COLUMNS} FROM portal_resets WHERE status = 'pending' AND username = ? AND pending_phc IS NOT NULL ORDER BY id DESC LIMIT 3"
        ),
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
                ctx.db.execute(
                    "UPDATE mail_deliveries SET status = 'delivered', detail = 'The client signed in with the emailed password, so the email arrived.', updated_at = ?
                     WHERE id = ? AND status IN ('sending', 'accepted')",
                    &[now.to_string().into(), d.into()],
                )?;
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

/// The newest reset of `client_id`, with where its email got to.
pub fn last_reset(
    db: &dyn Db,
    settings: &crate::settings::Settings,
    client_id: i64,
    now: i64,
) -> Result<Option<LastReset>, StorageError> {
    let rows = db.execute(
        "SELECT r.created_at, s.display_name, r.delivery, r.status, r.started_at, d.to_address, d.status, d.detail
         FROM portal_resets r JOIN staff s ON s.id = r.requested_by
         LEFT JOIN mail_deliveries d ON d.id = r.mail_delivery_id
         WHERE r.client_id = ? ORDER BY r.id DESC LIMIT 1",
        &[client_id.into()],
    )?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let status = r.text(3).unwrap_or_default();
    let mut mail_status = r.text(6).map(str::to_string);
    let mut detail = r.text(7).map(str::to_string);
    if status == "superseded"
        || (status == "pending"
            && now - r.int(4).unwrap_or_default() >= settings.mail_stale_seconds())
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

/// Records that an email is being handed to the provider (`sending`); answers the row's id.
fn insert_delivery(
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
            "INSERT INTO mail_deliveries (public_id, client_id, purpose, provider, to_address, status, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, 'sending', ?, ?) RETURNING id",
            &[public_id.into(), client_id.into(), purpose.into(), mail.provider.as_str().into(), to.as_ref().into(), now.as_str().into(), now.as_str().into()],
        )?
        .first()
        .and_then(|r| r.int(0))
        .ok_or_else(|| StorageError("no delivery id".into()))
}

/// Records how the hand-over ended: accepted with the provider's message id (delivered, for
/// the local mailbox, which is the destination), or failed with the reason. A status a
/// webhook has already moved is kept.
fn record_outcome(
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
                "UPDATE mail_deliveries SET status = CASE WHEN status = 'sending' THEN ? ELSE status END,
                 provider_message_id = ?, detail = coalesce(detail, ?), attempts = ?, updated_at = ? WHERE id = ?",
                &[status.into(), sent.message_id.as_str().into(), detail.map(str::to_string).into(), i64::from(sent.attempts).into(), now.into(), delivery_id.into()],
            )?;
        }
        Err(failure) => {
            ctx.db.execute(
                "UPDATE mail_deliveries SET status = 'failed', detail = ?, attempts = ?, updated_at = ? WHERE id = ?",
                &[failure.reason.as_str().into(), i64::from(failure.attempts).into(), now.into(), delivery_id.into()],
            )?;
        }
    }
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

/// Sends one email and records it in `mail_deliveries` (to whom, the provider's id, the
/// outcome — never the content) and in the audit log. `compose` gets the delivery's id.
pub fn send_recorded(
    ctx: &Ctx<'_>,
    mail: &MailSettings,
    transport: &dyn Transport,
    what: &Recorded<'_>,
    compose: impl FnOnce(&str) -> mail::Message,
) -> Result<Result<mail::Sent, mail::Failure>, StorageError> {
    let public_id = new_public_id()?;
    let delivery_id = transaction(ctx.db, || {
        insert_delivery(ctx, mail, &public_id, what.client_id, what.purpose, what.to)
    })?;
    let message = compose(&public_id);
    let sent = mail::deliver(transport, mail, &message);
    drop(message);
    transaction(ctx.db, || {
        record_outcome(ctx, mail, delivery_id, &sent.as_ref())?;
        audit::record(
            ctx.db,
            ctx.clock,
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

/// Emails a forgot-password link; records the delivery, never the link.
pub fn send_reset_link(
    ctx: &Ctx<'_>,
    mail: &MailSettings,
    transport: &dyn Transport,
    link: &crate::auth::ResetLink,
) -> Result<(), StorageError> {
    let subject = link.account.label();
    let minutes = (link.expires_at - ctx.clock.now().as_second())
        .div_euclid(60)
        .max(1);
    let what = Recorded {
        purpose: "reset_link",
        client_id: Some(link.account.id),
        to: &link.email,
        subject: &subject,
        actor: "system",
        sent_action: "reset_link_sent",
        failed_action: "reset_link_failed",
    };
    send_recorded(ctx, mail, transport, &what, |public_id| {
        mail::reset_link_email(
            mail,
            &link.email,
            &link.username,
            link.token.expose(),
            minutes,
            public_id,
        )
    })
    .map(drop)
}

/// What a webhook call changed.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    pub updated: usize,
    pub unknown: usize,
}

/// Applies a provider's delivery events: the delivery moves to delivered, bounced or failed
/// (a later `delivered` does not undo a bounce), and the client's history says so.
pub fn apply_events(
    ctx: &Ctx<'_>,
    provider: Provider,
    events: &[mail::Event],
) -> Result<Applied, StorageError> {
    let mut applied = Applied::default();
    for event in events {
        let found = ctx.db.execute(
            "SELECT id, public_id, client_id, status, to_address FROM mail_deliveries
             WHERE provider = ? AND (public_id = ? OR provider_message_id = ?) LIMIT 1",
            &[
                provider.as_str().into(),
                event.delivery_id.clone().into(),
                event.message_id.clone().into(),
            ],
        )?;
        let Some(row) = found.first() else {
            applied.unknown += 1;
            continue;
        };
        let id = row.int(0).unwrap_or_default();
        let public_id = row.text(1).unwrap_or_default().to_string();
        let client_id = row.int(2);
        let current = row.text(3).unwrap_or_default().to_string();
        let to = row.text(4).unwrap_or_default().to_string();
        let next = match (current.as_str(), event.status) {
            ("bounced" | "failed", EventStatus::Delivered) => current.clone(),
            (_, s) => s.as_str().to_string(),
        };
        let record = json!({ "event": event.kind, "at": event.at, "detail": event.detail });
        transaction(ctx.db, || {
            ctx.db.execute(
                "UPDATE mail_deliveries SET status = ?, detail = coalesce(?, detail), events = json_insert(events, '$[#]', json(?)), updated_at = ? WHERE id = ?",
                &[next.as_str().into(), event.detail.clone().into(), record.to_string().into(), ctx.clock.now().to_string().into(), id.into()],
            )?;
            // A reset still parked (the component stopped before recording the send):
            // delivered completes it; a bounce or failure ends it.
            let parked = reset_rows(
                ctx.db,
                &format!(
                    "SELECT {RESET_COLUMNS} FROM portal_resets WHERE mail_delivery_id = ? AND status = 'pending'"
                ),
                &[id.into()],
            )?;
            for r in parked {
                if event.status == EventStatus::Delivered {
                    complete(
                        ctx,
                        r.id,
                        &format!("provider:{}", provider.as_str()),
                        json!({ "completed_by": "delivery_webhook" }),
                    )?;
                } else {
                    ctx.db.execute(
                        "UPDATE portal_resets SET status = 'failed', pending_phc = NULL WHERE id = ?",
                        &[r.id.into()],
                    )?;
                }
            }
            if let Some(client_id) = client_id {
                audit::record(
                    ctx.db,
                    ctx.clock,
                    &format!("provider:{}", provider.as_str()),
                    &format!("mail_{}", event.status.as_str()),
                    Some(&format!("client:{client_id}")),
                    json!({ "delivery_id": public_id, "to": to, "detail": event.detail }),
                )?;
            }
            Ok::<_, StorageError>(())
        })?;
        applied.updated += 1;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests;
