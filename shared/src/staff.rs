//! Staff management for administrators: the staff list, adding a staff member with a
//! temporary password (changed at first sign-in), and assigning clients to staff.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api_error::{ApiError, Code};
use crate::credentials;
use crate::ctx::Ctx;
use crate::deliveries::{self, Recorded};
use crate::domain::{Account, AccountKind, DisplayName, Email, Password, Role};
use crate::mail::{self, MailSettings, Transport};
use crate::passwords;
use crate::ports::{StorageError, transaction};
use crate::tokens;

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
    Ok(select(
        ctx,
        "1 ORDER BY display_name COLLATE NOCASE, id",
        &[],
    )?)
}

/// Staff members `WHERE {filter}`.
fn select(
    ctx: &Ctx<'_>,
    filter: &str,
    params: &[crate::ports::Value],
) -> Result<Vec<StaffView>, StorageError> {
    let rows = ctx.db.execute(
        &format!("SELECT id, email, display_name, role, status FROM staff WHERE {filter}"),
        params,
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

/// `PATCH /api/staff/:id`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffChange {
    pub status: String,
}

/// Disables a staff member (their sessions end at once, they cannot sign in, their caseload
/// stays for whoever takes it over) or enables them again. An administrator cannot disable
/// themselves, nor the last active administrator.
pub fn set_status(
    ctx: &Ctx<'_>,
    admin: Account,
    role: Role,
    staff_id: i64,
    change: &StaffChange,
) -> Result<StaffView, ApiError> {
    admin_only(role)?;
    let status = match change.status.as_str() {
        "active" | "disabled" => change.status.as_str(),
        _ => return Err(ApiError::invalid("status", "status is active or disabled.")),
    };
    if status == "disabled" && staff_id == admin.id {
        return Err(ApiError::new(
            Code::Forbidden,
            "You cannot disable your own account; ask another administrator.",
        ));
    }
    let account = Account {
        kind: AccountKind::Staff,
        id: staff_id,
    };
    transaction(ctx.db, || {
        let Some(current) = member(ctx, staff_id)? else {
            return Err(ApiError::not_found());
        };
        if current.status == status {
            return Ok(current);
        }
        if status == "disabled" && current.role == Role::Admin.as_str() {
            let others = ctx.db.execute(
                "SELECT count(*) FROM staff WHERE role = 'admin' AND status = 'active' AND id != ?",
                &[staff_id.into()],
            )?;
            if others.first().and_then(|r| r.int(0)).unwrap_or(0) == 0 {
                return Err(ApiError::new(
                    Code::Forbidden,
                    "This is the last active administrator; make someone else an administrator first.",
                ));
            }
        }
        ctx.db.execute(
            "UPDATE staff SET status = ? WHERE id = ?",
            &[status.into(), staff_id.into()],
        )?;
        if status == "disabled" {
            tokens::revoke_all_sessions(ctx.db, account)?;
        }
        ctx.audit(
            &admin.label(),
            if status == "disabled" {
                "staff_disabled"
            } else {
                "staff_enabled"
            },
            Some(&account.label()),
            json!({ "email": current.email }),
        )?;
        Ok(StaffView {
            status: status.to_string(),
            ..current
        })
    })
}

fn member(ctx: &Ctx<'_>, staff_id: i64) -> Result<Option<StaffView>, StorageError> {
    Ok(select(ctx, "id = ?", &[staff_id.into()])?.pop())
}

/// Takes a client off a staff member's caseload: they no longer see the client.
pub fn unassign(
    ctx: &Ctx<'_>,
    admin: Account,
    role: Role,
    client: i64,
    staff_id: i64,
) -> Result<(), ApiError> {
    admin_only(role)?;
    transaction(ctx.db, || {
        let removed = ctx.db.execute(
            "DELETE FROM caseload_assignments WHERE client_id = ? AND staff_id = ? RETURNING role",
            &[client.into(), staff_id.into()],
        )?;
        let Some(case_role) = removed.first().and_then(|r| r.text(0).map(str::to_string)) else {
            return Err(ApiError::not_found());
        };
        ctx.audit(
            &admin.label(),
            "client_unassigned",
            Some(&format!("client:{client}")),
            json!({ "staff_id": staff_id, "role": case_role }),
        )?;
        Ok(())
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{LoginRequest, SignIn, login, require_session};
    use crate::ports::Db;
    use crate::testing::World;

    fn id(w: &World, sql: &str) -> i64 {
        w.db.execute(sql, &[])
            .unwrap()
            .first()
            .and_then(|r| r.int(0))
            .unwrap()
    }

    fn staff(w: &World, email: &str) -> Account {
        Account {
            kind: AccountKind::Staff,
            id: id(w, &format!("SELECT id FROM staff WHERE email = '{email}'")),
        }
    }

    fn sign_in(w: &World, username: &str, password: &str) -> Result<SignIn, ApiError> {
        login(
            &w.ctx(),
            &LoginRequest {
                realm: "staff".into(),
                username: username.into(),
                password: password.into(),
            },
            "10.0.0.3",
        )
    }

    fn change(status: &str) -> StaffChange {
        StaffChange {
            status: status.into(),
        }
    }

    #[test]
    fn a_disabled_staff_member_is_signed_out_at_once_and_cannot_sign_in() {
        let w = World::new();
        let ctx = w.ctx();
        let admin = staff(&w, "admin@example.org");
        let casey = staff(&w, "casey.manager@example.org");
        let Ok(SignIn::Session { token, .. }) =
            sign_in(&w, "casey.manager@example.org", "caseport-demo-manager")
        else {
            panic!("Casey signs in");
        };
        assert!(require_session(&ctx, Some(token.expose())).is_ok());
        let view = set_status(&ctx, admin, Role::Admin, casey.id, &change("disabled")).unwrap();
        assert_eq!(view.status, "disabled");
        assert_eq!(
            require_session(&ctx, Some(token.expose()))
                .unwrap_err()
                .code,
            "not_signed_in"
        );
        assert_eq!(
            sign_in(&w, "casey.manager@example.org", "caseport-demo-manager")
                .err()
                .unwrap()
                .code,
            "invalid_credentials"
        );
        set_status(&ctx, admin, Role::Admin, casey.id, &change("active")).unwrap();
        assert!(sign_in(&w, "casey.manager@example.org", "caseport-demo-manager").is_ok());
        let audited = id(
            &w,
            "SELECT count(*) FROM audit_log WHERE action IN ('staff_disabled', 'staff_enabled')",
        );
        assert_eq!(audited, 2);
    }

    #[test]
    fn only_administrators_disable_and_never_themselves_or_the_last_one() {
        let w = World::new();
        let ctx = w.ctx();
        let admin = staff(&w, "admin@example.org");
        let casey = staff(&w, "casey.manager@example.org");
        let refused = set_status(
            &ctx,
            casey,
            Role::CaseManager,
            admin.id,
            &change("disabled"),
        );
        assert_eq!(refused.unwrap_err().code, "forbidden");
        let own = set_status(&ctx, admin, Role::Admin, admin.id, &change("disabled"));
        assert_eq!(own.unwrap_err().code, "forbidden");
        w.db.execute(
            "UPDATE staff SET role = 'admin' WHERE id = ?",
            &[casey.id.into()],
        )
        .unwrap();
        // Casey, now an administrator, may disable the other one, but not then herself.
        set_status(&ctx, casey, Role::Admin, admin.id, &change("disabled")).unwrap();
        let last = set_status(&ctx, admin, Role::Admin, casey.id, &change("disabled"));
        assert_eq!(last.unwrap_err().code, "forbidden");
        let bad = set_status(&ctx, casey, Role::Admin, admin.id, &change("gone"));
        assert_eq!(bad.unwrap_err().field.as_deref(), Some("status"));
    }

    #[test]
    fn an_unassigned_client_leaves_the_caseload() {
        let w = World::new();
        let ctx = w.ctx();
        let admin = staff(&w, "admin@example.org");
        let casey = staff(&w, "casey.manager@example.org");
        let jane = id(&w, "SELECT id FROM clients WHERE first_name = 'Jane'");
        assert!(crate::clients::may_see(&w.db, casey, Role::CaseManager, jane).unwrap());
        unassign(&ctx, admin, Role::Admin, jane, casey.id).unwrap();
        assert!(!crate::clients::may_see(&w.db, casey, Role::CaseManager, jane).unwrap());
        assert_eq!(
            unassign(&ctx, admin, Role::Admin, jane, casey.id)
                .unwrap_err()
                .code,
            "not_found"
        );
        assert_eq!(
            id(
                &w,
                "SELECT count(*) FROM audit_log WHERE action = 'client_unassigned'"
            ),
            1
        );
    }
}
