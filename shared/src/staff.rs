//! Staff management for administrators: the staff list, adding a staff member with a
//! temporary password (changed at first sign-in), and assigning clients to staff.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api_error::{ApiError, Code};
use crate::credentials;
use crate::ctx::Ctx;
use crate::deliveries::{self, Recorded};
use crate::domain::{Account, DisplayName, Email, Password, Role};
use crate::mail::{self, MailSettings, Transport};
use crate::passwords;
use crate::ports::transaction;

/// A staff member as the API shows them.
#[derive(Debug, Serialize)]
pub struct StaffView {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub role: &'static str,
    pub status: String,
}

fn admin_only(role: Role) -> Result<(), ApiError> {
    if role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::Forbidden,
            "Only administrators manage staff and assignments.",
        ))
    }
}

/// Every staff member, by name.
pub fn list(ctx: &Ctx<'_>, role: Role) -> Result<Vec<StaffView>, ApiError> {
    admin_only(role)?;
    let rows = ctx.db.execute(
        "SELECT id, email, display_name, role, status FROM staff ORDER BY display_name COLLATE NOCASE, id",
        &[],
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(StaffView {
                id: r.int(0)?,
                email: r.text(1)?.to_string(),
                display_name: r.text(2)?.to_string(),
                role: Role::from_db(r.text(3)?)?.as_str(),
                status: r.text(4)?.to_string(),
            })
        })
        .collect())
}

/// `POST /api/staff`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStaff {
    pub email: String,
    pub display_name: String,
    pub role: String,
}

/// A new staff member and the temporary password to hand them (shown once, never stored).
pub struct Added {
    pub staff: StaffView,
    pub temporary_password: Password,
    pub expires_at: String,
}

/// Adds a staff member whose temporary password must be changed at first sign-in.
pub fn add(ctx: &Ctx<'_>, admin: Account, role: Role, new: &NewStaff) -> Result<Added, ApiError> {
    admin_only(role)?;
    let email = Email::parse(&new.email).map_err(|m| ApiError::invalid("email", m))?;
    let name = DisplayName::parse(&new.display_name)?;
    let new_role = Role::from_db(&new.role)
        .ok_or_else(|| ApiError::invalid("role", "role is case_manager or admin."))?;
    let temp = passwords::temporary()?;
    let phc = passwords::hash(&passwords::temporary_canonical(temp.expose()))?;
    let now = ctx.clock.now();
    let expires = now
        .checked_add(jiff::SignedDuration::from_hours(
            ctx.settings.temp_password_ttl_hours,
        ))
        .map_err(|_| ApiError::internal())?;
    let id = transaction(ctx.db, || {
        let taken = ctx.db.execute(
            "SELECT 1 FROM staff WHERE email = ?",
            &[email.as_ref().into()],
        )?;
        if taken.first().is_some() {
            return Err(ApiError::new(
                Code::EmailInUse,
                "A staff member with this email already exists.",
            )
            .at("email"));
        }
        let id = ctx
            .db
            .execute(
                "INSERT INTO staff (email, display_name, role, created_at) VALUES (?, ?, ?, ?) RETURNING id",
                &[email.as_ref().into(), name.as_ref().into(), new_role.as_str().into(), now.to_string().into()],
            )?
            .first()
            .and_then(|r| r.int(0))
            .ok_or_else(ApiError::internal)?;
        credentials::create_staff(ctx, id, &email, &phc, Some(&expires.to_string()))?;
        let subject = format!("staff:{id}");
        ctx.audit(
            &admin.label(),
            "staff_added",
            Some(&subject),
            json!({ "email": email.as_ref(), "role": new_role.as_str() }),
        )?;
        Ok(id)
    })?;
    Ok(Added {
        staff: StaffView {
            id,
            email: email.to_string(),
            display_name: name.as_ref().to_string(),
            role: new_role.as_str(),
            status: "active".into(),
        },
        temporary_password: temp,
        expires_at: expires.to_string(),
    })
}

/// `POST /api/clients/:id/assignments`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    pub staff_id: i64,
    pub role: String,
}

/// Assigns a client to a staff member with a caseload role (replacing an earlier role).
pub fn assign(
    ctx: &Ctx<'_>,
    admin: Account,
    role: Role,
    client: i64,
    a: &Assignment,
) -> Result<serde_json::Value, ApiError> {
    admin_only(role)?;
    let case_role = match a.role.as_str() {
        "primary_case_manager" | "support_primary_staff" => a.role.as_str(),
        _ => {
            return Err(ApiError::invalid(
                "role",
                "role is primary_case_manager or support_primary_staff.",
            ));
        }
    };
    if ctx
        .db
        .execute("SELECT 1 FROM clients WHERE id = ?", &[client.into()])?
        .first()
        .is_none()
    {
        return Err(ApiError::not_found());
    }
    if ctx
        .db
        .execute(
            "SELECT 1 FROM staff WHERE id = ? AND status = 'active'",
            &[a.staff_id.into()],
        )?
        .first()
        .is_none()
    {
        return Err(ApiError::invalid(
            "staff_id",
            "No active staff member has this id.",
        ));
    }
    let today = ctx.today().to_string();
    transaction(ctx.db, || {
        ctx.db.execute(
            "INSERT INTO caseload_assignments (staff_id, client_id, role, date_assigned) VALUES (?, ?, ?, ?)
             ON CONFLICT (staff_id, client_id) DO UPDATE SET role = excluded.role",
            &[a.staff_id.into(), client.into(), case_role.into(), today.as_str().into()],
        )?;
        let subject = format!("client:{client}");
        ctx.audit(
            &admin.label(),
            "client_assigned",
            Some(&subject),
            json!({ "staff_id": a.staff_id, "role": case_role }),
        )?;
        Ok::<_, ApiError>(())
    })?;
    Ok(
        json!({ "client_id": client, "staff_id": a.staff_id, "role": case_role, "date_assigned": today }),
    )
}

/// What `POST /api/staff` answers about the temporary password.
pub enum Handed {
    /// Emailed to the new staff member (the address masked).
    Emailed { sent_to: String },
    /// The email failed: the administrator gets the password once, with the reason.
    Shown {
        temporary_password: Password,
        reason: String,
    },
}

/// Emails a new staff member their temporary password; if the email fails, or no mail
/// provider is configured, hands it back to show once instead, with the reason, so the
/// account is never left without a way in.
pub fn email_temporary_password(
    ctx: &Ctx<'_>,
    mail: Option<&MailSettings>,
    transport: &dyn Transport,
    admin: Account,
    added: Added,
) -> Result<(StaffView, Handed, String), ApiError> {
    let to = Email::parse(&added.staff.email).map_err(|_| ApiError::internal())?;
    let subject = format!("staff:{}", added.staff.id);
    let actor = admin.label();
    let Some(mail) = mail else {
        let reason = mail::NOT_CONFIGURED.to_string();
        transaction(ctx.db, || {
            ctx.audit(
                &actor,
                "staff_password_shown",
                Some(&subject),
                json!({ "reason": "mail_not_configured" }),
            )
        })?;
        return Ok((
            added.staff,
            Handed::Shown {
                temporary_password: added.temporary_password,
                reason,
            },
            added.expires_at,
        ));
    };
    let expires_human = added
        .expires_at
        .parse::<jiff::Timestamp>()
        .map(|t| mail::human_time(t, &ctx.settings.clinic_timezone))
        .unwrap_or_else(|_| added.expires_at.clone());
    let what = Recorded {
        purpose: "temporary_password",
        client_id: None,
        to: &to,
        subject: &subject,
        actor: &actor,
        sent_action: "staff_password_emailed",
        failed_action: "staff_password_email_failed",
    };
    let sent = deliveries::send_recorded(ctx, mail, transport, &what, |public_id| {
        mail::staff_welcome_email(
            mail,
            &to,
            &added.staff.display_name,
            &added.temporary_password,
            &expires_human,
            public_id,
        )
    })?;
    let handed = match sent {
        Ok(_) => Handed::Emailed {
            sent_to: mail::masked(&to),
        },
        Err(failure) => Handed::Shown {
            temporary_password: added.temporary_password,
            reason: failure.reason,
        },
    };
    Ok((added.staff, handed, added.expires_at))
}
