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
use crate::throttle;
use crate::tokens;

/// A staff member as the API shows them.
#[derive(Debug, Serialize)]
pub struct StaffView {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub role: &'static str,
    /// `active` or `disabled`.
    pub status: String,
    /// Until when sign-in is locked after wrong passwords (from one network or from all);
    /// `None` when it is not. An administrator's unlock or password reset lifts it.
    pub locked_until: Option<String>,
    /// The last time they signed in; `None` for someone who never has (a new hire whose
    /// temporary password is still unused).
    pub last_sign_in_at: Option<String>,
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
        "1 ORDER BY s.display_name COLLATE NOCASE, s.id",
        &[],
    )?)
}

/// Staff members `WHERE {filter}`, with whether their sign-in is locked now.
fn select(
    ctx: &Ctx<'_>,
    filter: &str,
    params: &[crate::ports::Value],
) -> Result<Vec<StaffView>, StorageError> {
    let rows = ctx.db.execute(
        &format!(
            "SELECT s.id, s.email, s.display_name, s.role, s.status, c.username, c.last_sign_in_at
             FROM staff s LEFT JOIN credentials c ON c.owner_kind = 'staff' AND c.owner_id = s.id
             WHERE s.clinic_id = ?1 AND {filter}"
        ),
        params,
    )?;
    let locks = throttle::account_locks(ctx.db, ctx.now())?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let locked_until = r
                .text(5)
                .map(|username| credentials::lockout_key(AccountKind::Staff, username))
                .and_then(|key| locks.get(&key).copied())
                .and_then(|until| jiff::Timestamp::from_second(until).ok())
                .map(|t| t.to_string());
            Some(StaffView {
                id: r.int(0)?,
                email: r.text(1)?.to_string(),
                display_name: r.text(2)?.to_string(),
                role: Role::from_db(r.text(3)?)?.as_str(),
                status: r.text(4)?.to_string(),
                locked_until,
                last_sign_in_at: r.text(6).map(str::to_string),
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

/// A staff member and the temporary password to hand them (shown once, never stored): a new
/// account's, or one an administrator reset (`reset`).
pub struct Added {
    pub staff: StaffView,
    pub temporary_password: Password,
    pub expires_at: String,
    pub reset: bool,
}

/// A new temporary password, its hash and when it stops working.
fn temporary_password(ctx: &Ctx<'_>) -> Result<(Password, String, jiff::Timestamp), ApiError> {
    let (temp, phc) = passwords::new_temporary()?;
    let expires = ctx
        .clock
        .now()
        .checked_add(jiff::SignedDuration::from_hours(
            ctx.settings.temp_password_ttl_hours,
        ))
        .map_err(|_| ApiError::internal())?;
    Ok((temp, phc, expires))
}

/// Adds a staff member whose temporary password must be changed at first sign-in.
pub fn add(ctx: &Ctx<'_>, admin: Account, role: Role, new: &NewStaff) -> Result<Added, ApiError> {
    admin_only(role)?;
    let email = Email::parse(&new.email).map_err(|m| ApiError::invalid("email", m))?;
    let name = DisplayName::parse(&new.display_name)?;
    let new_role = Role::from_db(&new.role)
        .ok_or_else(|| ApiError::invalid("role", "role is case_manager or admin."))?;
    let (temp, phc, expires) = temporary_password(ctx)?;
    let now = ctx.clock.now();
    let id = transaction(ctx.db, || {
        let taken = ctx.db.execute(
            "SELECT 1 FROM staff WHERE clinic_id = ?1 AND email = ?",
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
                "INSERT INTO staff (clinic_id, email, display_name, role, created_at) VALUES (?1, ?, ?, ?, ?) RETURNING id",
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
            locked_until: None,
            last_sign_in_at: None,
        },
        temporary_password: temp,
        expires_at: expires.to_string(),
        reset: false,
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
        .execute(
            "SELECT 1 FROM clients WHERE clinic_id = ?1 AND id = ?",
            &[client.into()],
        )?
        .first()
        .is_none()
    {
        return Err(ApiError::not_found());
    }
    if ctx
        .db
        .execute(
            "SELECT 1 FROM staff WHERE clinic_id = ?1 AND id = ? AND status = 'active'",
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
            "INSERT INTO caseload_assignments (clinic_id, staff_id, client_id, role, date_assigned) VALUES (?1, ?, ?, ?, ?)
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
                "SELECT count(*) FROM staff WHERE clinic_id = ?1 AND role = 'admin' AND status = 'active' AND id != ?",
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
            "UPDATE staff SET status = ?2 WHERE clinic_id = ?1 AND id = ?",
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

/// An active staff member other than the administrator acting, or why not.
fn other_active_member(
    ctx: &Ctx<'_>,
    admin: Account,
    staff_id: i64,
    doing: &str,
) -> Result<(Account, StaffView), ApiError> {
    if staff_id == admin.id {
        return Err(ApiError::new(
            Code::Forbidden,
            format!(
                "You cannot {doing} your own account here; use Change password, or ask another administrator."
            ),
        ));
    }
    let current = member(ctx, staff_id)?.ok_or_else(ApiError::not_found)?;
    if current.status != "active" {
        return Err(ApiError::new(
            Code::Forbidden,
            format!(
                "{} is disabled; enable the account first.",
                current.display_name
            ),
        ));
    }
    let account = Account {
        kind: AccountKind::Staff,
        id: staff_id,
    };
    Ok((account, current))
}

/// Gives a staff member who forgot their password a new temporary one (changed at their next
/// sign-in): the old password stops working, their sessions end, and a lock from wrong
/// passwords is lifted. The caller emails it or shows it once, as for a new staff member.
pub fn reset_password(
    ctx: &Ctx<'_>,
    admin: Account,
    role: Role,
    staff_id: i64,
) -> Result<Added, ApiError> {
    admin_only(role)?;
    let (account, current) = other_active_member(ctx, admin, staff_id, "reset")?;
    let (temp, phc, expires) = temporary_password(ctx)?;
    transaction(ctx.db, || {
        credentials::reissue_staff_temporary(ctx, staff_id, &phc, &expires.to_string())?;
        ctx.audit(
            &admin.label(),
            "staff_password_reset",
            Some(&account.label()),
            json!({ "email": current.email }),
        )?;
        Ok::<_, ApiError>(())
    })?;
    Ok(Added {
        staff: StaffView {
            locked_until: None,
            ..current
        },
        temporary_password: temp,
        expires_at: expires.to_string(),
        reset: true,
    })
}

/// Lifts the lock that wrong passwords put on a staff member's sign-in, from every network;
/// their password stays as it is.
pub fn unlock(
    ctx: &Ctx<'_>,
    admin: Account,
    role: Role,
    staff_id: i64,
) -> Result<StaffView, ApiError> {
    admin_only(role)?;
    let (account, current) = other_active_member(ctx, admin, staff_id, "unlock")?;
    transaction(ctx.db, || {
        credentials::unlock(ctx.db, account)?;
        ctx.audit(
            &admin.label(),
            "staff_unlocked",
            Some(&account.label()),
            json!({ "email": current.email, "was_locked_until": current.locked_until }),
        )?;
        Ok::<_, ApiError>(())
    })?;
    Ok(StaffView {
        locked_until: None,
        ..current
    })
}

fn member(ctx: &Ctx<'_>, staff_id: i64) -> Result<Option<StaffView>, StorageError> {
    Ok(select(ctx, "s.id = ?", &[staff_id.into()])?.pop())
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
            "DELETE FROM caseload_assignments WHERE clinic_id = ?1 AND client_id = ? AND staff_id = ? RETURNING role",
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

/// What `POST /api/staff` and `POST /api/staff/:id/reset-password` answer about the temporary
/// password.
pub enum Handed {
    /// Emailed to the new staff member (the address masked).
    Emailed { sent_to: String },
    /// The email failed: the administrator gets the password once, with the reason.
    Shown {
        temporary_password: Password,
        reason: String,
    },
}

/// Emails a staff member their temporary password; if the email fails, or no mail
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
        .map(|t| mail::human_time(t, ctx.settings.clinic_timezone.rules()))
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
            added.reset,
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
        w.raw()
            .execute(sql, &[])
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

    /// The demo's administrator and Casey, a case manager.
    fn admin_and_casey(w: &World) -> (Account, Account) {
        (
            staff(w, "admin@example.org"),
            staff(w, "casey.manager@example.org"),
        )
    }

    /// How many audit entries have one of `actions` (a SQL list of strings).
    fn audited(w: &World, actions: &str) -> i64 {
        id(
            w,
            &format!("SELECT count(*) FROM audit_log WHERE action IN ({actions})"),
        )
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
        let (admin, casey) = admin_and_casey(&w);
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
        assert_eq!(audited(&w, "'staff_disabled', 'staff_enabled'"), 2);
    }

    #[test]
    fn only_administrators_disable_and_never_themselves_or_the_last_one() {
        let w = World::new();
        let ctx = w.ctx();
        let (admin, casey) = admin_and_casey(&w);
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
        w.raw()
            .execute(
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
    fn a_locked_staff_member_is_shown_locked_and_an_administrator_unlocks_them() {
        let w = World::new();
        let ctx = w.ctx();
        let (admin, casey) = admin_and_casey(&w);
        let casey_view = |w: &World| {
            list(&w.ctx(), Role::Admin)
                .unwrap()
                .into_iter()
                .find(|s| s.id == casey.id)
                .unwrap()
        };
        assert!(casey_view(&w).locked_until.is_none());
        for _ in 0..5 {
            assert!(sign_in(&w, "Casey.Manager@example.org", "wrong").is_err());
        }
        assert!(casey_view(&w).locked_until.is_some());
        assert_eq!(
            sign_in(&w, "casey.manager@example.org", "caseport-demo-manager")
                .err()
                .unwrap()
                .code,
            "too_many_attempts"
        );
        let refused = unlock(&ctx, casey, Role::CaseManager, casey.id);
        assert_eq!(refused.unwrap_err().code, "forbidden");
        assert!(
            unlock(&ctx, admin, Role::Admin, casey.id)
                .unwrap()
                .locked_until
                .is_none()
        );
        assert!(casey_view(&w).locked_until.is_none());
        assert!(sign_in(&w, "casey.manager@example.org", "caseport-demo-manager").is_ok());
        assert_eq!(audited(&w, "'staff_unlocked'"), 1);
    }

    #[test]
    fn a_reset_staff_password_replaces_the_old_one_and_must_be_changed() {
        let w = World::new();
        let ctx = w.ctx();
        let (admin, casey) = admin_and_casey(&w);
        let Ok(SignIn::Session { token, .. }) =
            sign_in(&w, "casey.manager@example.org", "caseport-demo-manager")
        else {
            panic!("Casey signs in");
        };
        for _ in 0..5 {
            let _ = sign_in(&w, "casey.manager@example.org", "wrong");
        }
        let reset = reset_password(&ctx, admin, Role::Admin, casey.id).unwrap();
        assert!(reset.reset);
        assert!(reset.staff.locked_until.is_none());
        // Her session ended, the old password is refused, the new one asks for a change.
        assert!(require_session(&ctx, Some(token.expose())).is_err());
        assert_eq!(
            sign_in(&w, "casey.manager@example.org", "caseport-demo-manager")
                .err()
                .unwrap()
                .code,
            "invalid_credentials"
        );
        assert!(matches!(
            sign_in(
                &w,
                "casey.manager@example.org",
                reset.temporary_password.expose()
            ),
            Ok(SignIn::ChangeRequired { .. })
        ));
        assert_eq!(
            reset_password(&ctx, admin, Role::Admin, admin.id)
                .err()
                .unwrap()
                .code,
            "forbidden"
        );
        assert_eq!(
            reset_password(&ctx, casey, Role::CaseManager, admin.id)
                .err()
                .unwrap()
                .code,
            "forbidden"
        );
        assert_eq!(audited(&w, "'staff_password_reset'"), 1);
    }

    #[test]
    fn a_hire_who_never_signed_in_is_told_apart() {
        let w = World::new();
        let ctx = w.ctx();
        let admin = staff(&w, "admin@example.org");
        let added = add(
            &ctx,
            admin,
            Role::Admin,
            &NewStaff {
                email: "new.hire@example.org".into(),
                display_name: "New Hire".into(),
                role: "case_manager".into(),
            },
        )
        .unwrap();
        sign_in(&w, "admin@example.org", "caseport-demo-admin").unwrap();
        let everyone = list(&ctx, Role::Admin).unwrap();
        let signed_in = |id: i64| {
            everyone
                .iter()
                .find(|s| s.id == id)
                .unwrap()
                .last_sign_in_at
                .is_some()
        };
        assert!(!signed_in(added.staff.id));
        assert!(signed_in(admin.id));
    }

    #[test]
    fn an_unassigned_client_leaves_the_caseload() {
        let w = World::new();
        let ctx = w.ctx();
        let (admin, casey) = admin_and_casey(&w);
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
        assert_eq!(audited(&w, "'client_unassigned'"), 1);
    }
}
