//! Client Information: the selected client with age, email check and portal account status;
//! correcting the record with optimistic concurrency; the client's history from the audit log.
//! Every view and every change is audited.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use crate::api_error::{ApiError, Code};
use crate::audit;
use crate::clients::{self, EmailCheck, age, check_email};
use crate::credentials;
use crate::ctx::Ctx;
use crate::deliveries::{self, Recorded};
use crate::domain::{Account, AccountKind, Email, Role};
use crate::mail::{self, MailSettings, Transport};
use crate::names;
use crate::ports::{Db, StorageError, Value, transaction};

/// The client record as the API shows it.
#[derive(Debug, Serialize)]
pub struct Client {
    pub id: i64,
    pub first_name: String,
    pub middle_name: String,
    pub last_name: String,
    pub dob: String,
    pub age: i16,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub version: i64,
}

/// The client's portal account.
#[derive(Debug, Serialize)]
pub struct Portal {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temp_expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sign_in_at: Option<String>,
    /// The last reset: when, by whom, how, and where its email got to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reset: Option<crate::portal_resets::LastReset>,
}

/// `GET /api/clients/:id`.
#[derive(Debug, Serialize)]
pub struct View {
    pub client: Client,
    pub email_check: EmailCheck,
    pub portal: Portal,
    /// The staff on the client's caseload.
    pub case_managers: Vec<clients::CaseManager>,
    /// Whether Reset and Send New can email at all.
    pub mail: crate::mail::MailStatus,
}

fn not_found() -> ApiError {
    ApiError::not_found()
}

/// The client record, with the age on `today`.
pub fn load(db: &dyn Db, id: i64, today: Date) -> Result<Option<Client>, StorageError> {
    let rows = db.execute(
        "SELECT id, first_name, middle_name, last_name, dob, email, phone, version FROM clients WHERE clinic_id = ?1 AND id = ?",
        &[id.into()],
    )?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let dob = r.string(4)?;
    let born: Date = dob
        .parse()
        .map_err(|_| StorageError::new(format!("bad dob {dob}")))?;
    Ok(Some(Client {
        id,
        first_name: r.string(1)?,
        middle_name: r.text(2).unwrap_or_default().to_string(),
        last_name: r.string(3)?,
        age: age(born, today),
        dob,
        email: r.text(5).map(str::to_string),
        phone: r.text(6).map(str::to_string),
        version: r.int(7).unwrap_or(1),
    }))
}

fn portal(ctx: &Ctx<'_>, id: i64) -> Result<Portal, StorageError> {
    let rows = ctx.db.execute(
        "SELECT username, must_change, temp_expires_at, last_sign_in_at FROM credentials WHERE clinic_id = ?1 AND owner_kind = 'client' AND owner_id = ?",
        &[id.into()],
    )?;
    let now = ctx.now();
    let last_reset = crate::portal_resets::last_reset(
        ctx.db,
        id,
        now,
        crate::mail::longest_send_seconds(ctx.settings.mail_timeout_seconds),
    )?;
    let Some(r) = rows.first() else {
        return Ok(Portal {
            status: "none",
            username: None,
            temp_expires_at: None,
            last_sign_in_at: None,
            last_reset,
        });
    };
    let username = r.string(0)?;
    let locked = credentials::is_locked(ctx.db, AccountKind::Client, &username, now)?;
    let status = if locked {
        "locked"
    } else if r.int(1) == Some(1) {
        "password_reset_required"
    } else {
        "active"
    };
    Ok(Portal {
        status,
        username: Some(username),
        temp_expires_at: r.text(2).map(str::to_string),
        last_sign_in_at: r.text(3).map(str::to_string),
        last_reset,
    })
}

fn require_visible(ctx: &Ctx<'_>, staff: Account, role: Role, id: i64) -> Result<(), ApiError> {
    if clients::may_see(ctx.db, staff, role, id)? {
        Ok(())
    } else {
        Err(not_found())
    }
}

/// Shows a client, and records that `staff` looked.
pub fn view(
    ctx: &Ctx<'_>,
    staff: Account,
    role: Role,
    id: i64,
    today: Date,
    mail: crate::mail::MailStatus,
) -> Result<View, ApiError> {
    require_visible(ctx, staff, role, id)?;
    let client = load(ctx.db, id, today)?.ok_or_else(not_found)?;
    let subject = format!("client:{id}");
    transaction(ctx.db, || {
        audit::record(
            ctx.db,
            ctx.clock,
            &staff.label(),
            "client_viewed",
            Some(&subject),
            json!({}),
        )
    })?;
    Ok(View {
        email_check: check_email(client.email.as_deref()),
        portal: portal(ctx, id)?,
        case_managers: clients::case_managers(ctx.db, &[id])?
            .remove(&id)
            .unwrap_or_default(),
        client,
        mail,
    })
}

/// `PATCH /api/clients/:id`: the fields to change, and the version they were read at.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    pub version: i64,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub middle_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub dob: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

/// What a correction changed.
pub struct Updated {
    pub client: Client,
    pub email_check: EmailCheck,
    /// The address the client had before, when the email changed and the old one can take
    /// mail: it is told of the change.
    pub previous_email: Option<Email>,
}

/// Applies a correction if nobody changed the record since `version`; answers the record,
/// its email check, and the previous address to tell when the email changed. A portal
/// username that was the old address follows the new one.
pub fn update(
    ctx: &Ctx<'_>,
    staff: Account,
    role: Role,
    id: i64,
    patch: &Patch,
    today: Date,
) -> Result<Updated, ApiError> {
    require_visible(ctx, staff, role, id)?;
    let mut sets: Vec<(&'static str, Value)> = Vec::new();
    if let Some(v) = &patch.first_name {
        sets.push((
            "first_name",
            clients::parse_name("first_name", v, true)?.into(),
        ));
    }
    if let Some(v) = &patch.middle_name {
        sets.push((
            "middle_name",
            clients::parse_name("middle_name", v, false)?.into(),
        ));
    }
    if let Some(v) = &patch.last_name {
        sets.push((
            "last_name",
            clients::parse_name("last_name", v, true)?.into(),
        ));
    }
    if let Some(v) = &patch.dob {
        sets.push(("dob", clients::parse_dob(v, today)?.to_string().into()));
    }
    if let Some(v) = &patch.email {
        sets.push((
            "email",
            clients::parse_optional_email(v)?
                .map(|e| e.to_string())
                .into(),
        ));
    }
    if let Some(v) = &patch.phone {
        sets.push(("phone", clients::parse_phone(v)?.into()));
    }
    if sets.is_empty() {
        return Err(ApiError::invalid(
            "body",
            "Send at least one field to change, with the version you read.",
        ));
    }
    let conflict = || {
        ApiError::new(
            Code::VersionConflict,
            "Someone else changed this client while you were editing. Reload to see their change, then make yours again.",
        )
    };
    let (client, previous) = transaction(ctx.db, || {
        let before = load(ctx.db, id, today)?.ok_or_else(not_found)?;
        if before.version != patch.version {
            return Err(conflict());
        }
        let mut sets = sets.clone();
        if sets.iter().any(|(col, _)| col.ends_with("_name")) {
            // The names' search and sort keys follow them.
            let name = |col: &str, old: &str| {
                sets.iter()
                    .find_map(|(c, v)| match v {
                        Value::Text(t) if *c == col => Some(t.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| old.to_string())
            };
            let keys = names::Keys::of(
                &name("first_name", &before.first_name),
                &name("middle_name", &before.middle_name),
                &name("last_name", &before.last_name),
            );
            sets.extend([
                ("last_key", keys.last.into()),
                ("first_key", keys.first.into()),
                ("name_words", keys.words.into()),
            ]);
        }
        // Numbered from ?2: the clinic is ?1.
        let assignments: Vec<String> = (2..)
            .zip(&sets)
            .map(|(n, (col, _))| format!("{col} = ?{n}"))
            .collect();
        let mut params: Vec<Value> = sets.iter().map(|(_, v)| v.clone()).collect();
        params.push(id.into());
        params.push(patch.version.into());
        let changed = ctx.db.execute(
            &format!("UPDATE clients SET {}, version = version + 1 WHERE clinic_id = ?1 AND id = ? AND version = ? RETURNING id", assignments.join(", ")),
            &params,
        )?;
        if changed.first().is_none() {
            return Err(conflict());
        }
        let after = load(ctx.db, id, today)?.ok_or_else(not_found)?;
        let mut changes = Map::new();
        for (field, old, new) in [
            (
                "first_name",
                Some(before.first_name.clone()),
                Some(after.first_name.clone()),
            ),
            (
                "middle_name",
                Some(before.middle_name.clone()),
                Some(after.middle_name.clone()),
            ),
            (
                "last_name",
                Some(before.last_name.clone()),
                Some(after.last_name.clone()),
            ),
            ("dob", Some(before.dob.clone()), Some(after.dob.clone())),
            ("email", before.email.clone(), after.email.clone()),
            ("phone", before.phone.clone(), after.phone.clone()),
        ] {
            if old != new {
                changes.insert(field.into(), json!({ "old": old, "new": new }));
            }
        }
        let mut previous = None;
        if before.email != after.email {
            if let Some((old, new)) =
                credentials::follow_email(ctx, id, before.email.as_deref(), after.email.as_deref())?
            {
                changes.insert("username".into(), json!({ "old": old, "new": new }));
            }
            previous = before
                .email
                .as_deref()
                .filter(|e| check_email(Some(e)).ok)
                .and_then(|e| Email::parse(e).ok());
        }
        let subject = format!("client:{id}");
        audit::record(
            ctx.db,
            ctx.clock,
            &staff.label(),
            "client_updated",
            Some(&subject),
            Json::Object(changes),
        )?;
        Ok::<_, ApiError>((after, previous))
    })?;
    Ok(Updated {
        email_check: check_email(client.email.as_deref()),
        client,
        previous_email: previous,
    })
}

/// Tells the previous address that the portal email was changed (no password, nothing about
/// the client's care), and records it in the client's history. With no mail provider the
/// history says it could not be sent.
pub fn notify_email_changed(
    ctx: &Ctx<'_>,
    mail: Option<&MailSettings>,
    transport: &dyn Transport,
    staff: Account,
    client: &Client,
    previous: &Email,
) -> Result<(), StorageError> {
    let subject = format!("client:{}", client.id);
    let actor = staff.label();
    let Some(mail) = mail else {
        return transaction(ctx.db, || {
            ctx.audit(
                &actor,
                "email_change_notice_failed",
                Some(&subject),
                json!({ "sent_to": previous.as_ref(), "reason": mail::NOT_CONFIGURED }),
            )
        });
    };
    let new = client
        .email
        .as_deref()
        .and_then(|e| Email::parse(e).ok())
        .map(|e| mail::masked(&e));
    let what = Recorded {
        purpose: "email_changed",
        client_id: Some(client.id),
        to: previous,
        subject: &subject,
        actor: &actor,
        sent_action: "email_change_notice_sent",
        failed_action: "email_change_notice_failed",
    };
    let when = mail::human_time(ctx.clock.now(), ctx.settings.clinic_timezone.rules());
    deliveries::send_recorded(ctx, mail, transport, &what, |public_id| {
        mail::email_changed_email(mail, previous, new.as_deref(), &when, public_id)
    })
    .map(drop)
}

/// One line of a client's history.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub detail: Json,
}

/// The client's history, newest first (the last 200 entries).
pub fn history(ctx: &Ctx<'_>, staff: Account, role: Role, id: i64) -> Result<Vec<Entry>, ApiError> {
    require_visible(ctx, staff, role, id)?;
    let rows = ctx.db.execute(
        "SELECT at, actor, action, detail FROM audit_log WHERE clinic_id = ?1 AND subject = ? ORDER BY seq DESC LIMIT 200",
        &[format!("client:{id}").into()],
    )?;
    let mut entries: Vec<Entry> = rows
        .iter()
        .map(|r| Entry {
            at: r.text(0).unwrap_or_default().to_string(),
            actor: r.text(1).unwrap_or_default().to_string(),
            action: r.text(2).unwrap_or_default().to_string(),
            detail: r
                .text(3)
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Json::Null),
        })
        .collect();
    // Staff are named in words: who acted (`staff:3`), and whom an assignment was about. One
    // look-up of just those staff members.
    let actor_id = |e: &Entry| {
        e.actor
            .strip_prefix("staff:")
            .and_then(|n| n.parse::<i64>().ok())
    };
    let ids: std::collections::BTreeSet<i64> = entries
        .iter()
        .flat_map(|e| [actor_id(e), e.detail.get("staff_id").and_then(Json::as_i64)])
        .flatten()
        .collect();
    let names: std::collections::HashMap<i64, String> = if ids.is_empty() {
        std::collections::HashMap::new()
    } else {
        ctx.db
            .execute(
                &format!(
                    "SELECT id, display_name FROM staff WHERE clinic_id = ?1 AND id IN ({})",
                    vec!["?"; ids.len()].join(", ")
                ),
                &ids.iter().map(|id| Value::from(*id)).collect::<Vec<_>>(),
            )?
            .iter()
            .filter_map(|r| Some((r.int(0)?, r.string(1).ok()?)))
            .collect()
    };
    for entry in &mut entries {
        if let Some(name) = actor_id(entry).and_then(|id| names.get(&id)) {
            entry.actor = name.clone();
        }
        let staff = entry.detail.get("staff_id").and_then(Json::as_i64);
        if let (Some(name), Json::Object(detail)) =
            (staff.and_then(|id| names.get(&id)), &mut entry.detail)
        {
            detail.insert("staff_name".into(), Json::String(name.clone()));
        }
    }
    Ok(entries)
}
