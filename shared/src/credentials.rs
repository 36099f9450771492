//! Passwords of accounts: the one place that reads and writes the password columns of the
//! `credentials` table. Finding an account's credential, storing a new password, the portal
//! username, the lockout of an account, and the words of its own that its password may not
//! contain. (Session epochs, in the same table, belong to `tokens`.)

use crate::ctx::Ctx;
use crate::domain::{Account, AccountKind, Email, Password, Realm, Token};
use crate::passwords::{self, Check};
use crate::policy::OwnWords;
use crate::ports::{Db, Rows, StorageError};
use crate::throttle;
use crate::tokens;

/// An account's credential, as sign-in reads it.
pub struct Credential {
    pub account: Account,
    pub phc: String,
    pub must_change: bool,
    /// Set only for a generated temporary password.
    pub temp_expires_at: Option<jiff::Timestamp>,
}

impl Credential {
    /// What `typed` is compared as: a temporary password in its canonical form.
    pub fn candidate(&self, typed: &str) -> Password {
        if self.temp_expires_at.is_some() {
            Password::new(passwords::temporary_canonical(typed))
        } else {
            Password::new(typed.to_string())
        }
    }

    /// Whether `typed` is what the account signs in with now.
    pub fn accepts(&self, typed: &str) -> Result<bool, StorageError> {
        Ok(matches!(
            passwords::verify(&self.phc, &self.candidate(typed))?,
            Check::Right { .. }
        ))
    }
}

const COLUMNS: &str = "c.owner_kind, c.owner_id, c.phc, c.must_change, c.temp_expires_at";

fn credential_from(rows: &Rows) -> Option<Credential> {
    let r = rows.first()?;
    Some(Credential {
        account: Account {
            kind: AccountKind::from_db(r.text(0)?)?,
            id: r.int(1)?,
        },
        phc: r.text(2)?.to_string(),
        must_change: r.int(3)? != 0,
        temp_expires_at: r.text(4).and_then(|t| t.parse().ok()),
    })
}

/// The credential a sign-in to `realm` with `username` finds (staff only while active).
pub fn by_username(
    db: &dyn Db,
    realm: Realm,
    username: &str,
) -> Result<Option<Credential>, StorageError> {
    let sql = match realm {
        Realm::Staff => format!(
            "SELECT {COLUMNS} FROM credentials c JOIN staff s ON s.id = c.owner_id
             WHERE c.clinic_id = ?1 AND c.owner_kind = 'staff' AND c.username = ? AND s.status = 'active'"
        ),
        Realm::Portal => format!(
            "SELECT {COLUMNS} FROM credentials c WHERE c.clinic_id = ?1 AND c.owner_kind = 'client' AND c.username = ?"
        ),
    };
    Ok(credential_from(
        &db.execute(&sql, &[username.trim().into()])?,
    ))
}

/// The credential of `account`.
pub fn by_account(db: &dyn Db, account: Account) -> Result<Option<Credential>, StorageError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM credentials c WHERE c.clinic_id = ?1 AND c.owner_kind = ? AND c.owner_id = ?"
    );
    Ok(credential_from(&db.execute(
        &sql,
        &[account.kind.as_str().into(), account.id.into()],
    )?))
}

/// The username `account` signs in with, if it has a credential.
pub fn username(db: &dyn Db, account: Account) -> Result<Option<String>, StorageError> {
    Ok(db
        .execute(
            "SELECT username FROM credentials WHERE clinic_id = ?1 AND owner_kind = ? AND owner_id = ?",
            &[account.kind.as_str().into(), account.id.into()],
        )?
        .first()
        .and_then(|r| r.text(0).map(str::to_string)))
}

/// The lockout counter of a sign-in name: keyed by what is typed, so that it says nothing
/// about whether the account exists, and shared by sign-in and the signed-in change.
pub fn lockout_key(kind: AccountKind, username: &str) -> String {
    throttle::key(
        "account",
        &format!("{}:{}", kind.as_str(), username.trim().to_lowercase()),
    )
}

/// Whether the sign-in name is locked out now.
pub fn is_locked(
    db: &dyn Db,
    kind: AccountKind,
    username: &str,
    now: i64,
) -> Result<bool, StorageError> {
    throttle::is_locked(db, &lockout_key(kind, username), now)
}

/// The words of the account's own that its password may not contain: its email address and
/// username (with their local parts) and its name.
pub fn own_words(db: &dyn Db, account: Account) -> Result<OwnWords, StorageError> {
    let rows = match account.kind {
        AccountKind::Staff => db.execute(
            "SELECT s.display_name, s.email, c.username FROM staff s
             LEFT JOIN credentials c ON c.owner_kind = 'staff' AND c.owner_id = s.id WHERE s.clinic_id = ?1 AND s.id = ?",
            &[account.id.into()],
        )?,
        AccountKind::Client => db.execute(
            "SELECT cl.first_name || ' ' || cl.middle_name || ' ' || cl.last_name, cl.email, c.username FROM clients cl
             LEFT JOIN credentials c ON c.owner_kind = 'client' AND c.owner_id = cl.id WHERE cl.clinic_id = ?1 AND cl.id = ?",
            &[account.id.into()],
        )?,
    };
    Ok(match rows.first() {
        Some(r) => OwnWords::of(
            &[r.text(0).unwrap_or_default()],
            &[r.text(1).unwrap_or_default(), r.text(2).unwrap_or_default()],
        ),
        None => OwnWords::of(&[], &[]),
    })
}

/// A password the account chose (a forced change, a signed-in change, a reset link): it is
/// stored, every session and one-time token of the account ends, and a new session starts.
pub fn replace_password(ctx: &Ctx<'_>, account: Account, phc: &str) -> Result<Token, StorageError> {
    let now = ctx.clock.now();
    ctx.db.execute(
        "UPDATE credentials SET phc = ?2, must_change = 0, temp_expires_at = NULL, changed_at = ?3, last_sign_in_at = ?4
         WHERE clinic_id = ?1 AND owner_kind = ? AND owner_id = ?",
        &[phc.into(), now.to_string().into(), now.to_string().into(), account.kind.as_str().into(), account.id.into()],
    )?;
    tokens::revoke_all_sessions(ctx.db, account)?;
    tokens::drop_one_time_tokens(ctx.db, account)?;
    tokens::start_session(
        ctx.db,
        ctx.kv,
        account,
        now.as_second(),
        ctx.settings.session_limits(),
    )
}

/// A successful sign-in: when it happened, and the hash with today's parameters if the
/// stored one had older ones.
pub fn record_sign_in(
    ctx: &Ctx<'_>,
    account: Account,
    rehashed: Option<&str>,
) -> Result<(), StorageError> {
    if let Some(phc) = rehashed {
        ctx.db.execute(
            "UPDATE credentials SET phc = ?2 WHERE clinic_id = ?1 AND owner_kind = ? AND owner_id = ?",
            &[phc.into(), account.kind.as_str().into(), account.id.into()],
        )?;
    }
    ctx.db.execute(
        "UPDATE credentials SET last_sign_in_at = ?2 WHERE clinic_id = ?1 AND owner_kind = ? AND owner_id = ?",
        &[
            ctx.clock.now().to_string().into(),
            account.kind.as_str().into(),
            account.id.into(),
        ],
    )?;
    Ok(())
}

/// The credential of a new staff member: their email is the username; a temporary password
/// (with its expiry) must be changed at first sign-in.
pub fn create_staff(
    ctx: &Ctx<'_>,
    staff_id: i64,
    email: &Email,
    phc: &str,
    temp_expires_at: Option<&str>,
) -> Result<(), StorageError> {
    ctx.db.execute(
        "INSERT INTO credentials (clinic_id, owner_kind, owner_id, username, phc, must_change, temp_expires_at, changed_at)
         VALUES (?1, 'staff', ?, ?, ?, ?, ?, ?)",
        &[
            staff_id.into(),
            email.as_ref().into(),
            phc.into(),
            temp_expires_at.is_some().into(),
            temp_expires_at.map(str::to_string).into(),
            ctx.clock.now().to_string().into(),
        ],
    )?;
    Ok(())
}

/// A staff member's password is replaced by a temporary one (`phc`, until `temp_expires_at`)
/// that they must change at their next sign-in: their sessions and unused links end, and any
/// lockout is lifted. Refused (a storage error: it cannot happen through the API) for a staff
/// member with no credential, whose temporary password would otherwise not work.
pub fn reissue_staff_temporary(
    ctx: &Ctx<'_>,
    staff_id: i64,
    phc: &str,
    temp_expires_at: &str,
) -> Result<(), StorageError> {
    let account = Account {
        kind: AccountKind::Staff,
        id: staff_id,
    };
    let Some(username) = self::username(ctx.db, account)? else {
        return Err(StorageError::new(format!(
            "staff:{staff_id} has no credential to reissue"
        )));
    };
    ctx.db.execute(
        "UPDATE credentials SET phc = ?2, must_change = 1, temp_expires_at = ?3, changed_at = ?4
         WHERE clinic_id = ?1 AND owner_kind = 'staff' AND owner_id = ?",
        &[
            phc.into(),
            temp_expires_at.into(),
            ctx.clock.now().to_string().into(),
            staff_id.into(),
        ],
    )?;
    end_access(ctx.db, account, &username)
}

/// What a password set by someone else ends: the account's sessions and unused links, and the
/// lockout of its sign-in name `username` (from every network).
fn end_access(db: &dyn Db, account: Account, username: &str) -> Result<(), StorageError> {
    tokens::revoke_all_sessions(db, account)?;
    tokens::drop_one_time_tokens(db, account)?;
    throttle::clear_account(db, &lockout_key(account.kind, username))
}

/// Lifts the lockout of the account's sign-in name, from every network; its password stays.
pub fn unlock(db: &dyn Db, account: Account) -> Result<(), StorageError> {
    match self::username(db, account)? {
        Some(username) => throttle::clear_account(db, &lockout_key(account.kind, &username)),
        None => Ok(()),
    }
}

/// Makes `phc` the client's portal credential under `username` (creating the account if it
/// has none): its sessions and unused links end, and any lockout is lifted.
pub fn install_portal(
    ctx: &Ctx<'_>,
    client_id: i64,
    username: &str,
    phc: &str,
    must_change: bool,
    temp_expires_at: Option<&str>,
) -> Result<(), StorageError> {
    let account = Account {
        kind: AccountKind::Client,
        id: client_id,
    };
    let params = [
        username.into(),
        phc.into(),
        must_change.into(),
        temp_expires_at.map(str::to_string).into(),
        ctx.clock.now().to_string().into(),
        client_id.into(),
    ];
    match self::username(ctx.db, account)? {
        Some(old) => {
            ctx.db.execute(
                "UPDATE credentials SET username = ?2, phc = ?3, must_change = ?4, temp_expires_at = ?5, changed_at = ?6
                 WHERE clinic_id = ?1 AND owner_kind = 'client' AND owner_id = ?",
                &params,
            )?;
            end_access(ctx.db, account, &old)?;
        }
        None => {
            ctx.db.execute(
                "INSERT INTO credentials (clinic_id, username, phc, must_change, temp_expires_at, changed_at, owner_kind, owner_id)
                 VALUES (?1, ?, ?, ?, ?, ?, 'client', ?)",
                &params,
            )?;
        }
    }
    throttle::clear_account(ctx.db, &lockout_key(AccountKind::Client, username))
}

/// A client's email was corrected from `old` to `new`: a portal username that was the old
/// address becomes the new one (what the client will type, and no longer an address that may
/// belong to someone else now), unless another client already uses it. Answers the change.
pub fn follow_email(
    ctx: &Ctx<'_>,
    client_id: i64,
    old: Option<&str>,
    new: Option<&str>,
) -> Result<Option<(String, String)>, StorageError> {
    let account = Account {
        kind: AccountKind::Client,
        id: client_id,
    };
    let (Some(current), Some(old), Some(new)) = (username(ctx.db, account)?, old, new) else {
        return Ok(None);
    };
    if !current.eq_ignore_ascii_case(old) || username_taken(ctx.db, client_id, new)? {
        return Ok(None);
    }
    ctx.db.execute(
        "UPDATE credentials SET username = ?2 WHERE clinic_id = ?1 AND owner_kind = 'client' AND owner_id = ?",
        &[new.into(), client_id.into()],
    )?;
    // A lockout of the old name must not follow, nor stay behind for its new owner.
    throttle::clear_account(ctx.db, &lockout_key(AccountKind::Client, &current))?;
    Ok(Some((current, new.to_string())))
}

/// Whether another client's portal account already uses (or a parked reset is about to use)
/// `username`.
fn username_taken(db: &dyn Db, client_id: i64, username: &str) -> Result<bool, StorageError> {
    Ok(db
        .execute(
            "SELECT 1 FROM credentials WHERE clinic_id = ?1 AND owner_kind = 'client' AND username = ? AND owner_id != ?
             UNION ALL
             SELECT 1 FROM portal_resets WHERE clinic_id = ?1 AND status = 'pending' AND username = ? AND client_id != ?",
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

/// What a portal username is chosen from.
pub struct PortalIdentity<'a> {
    pub client_id: i64,
    pub first_name: &'a str,
    pub last_name: &'a str,
    /// The client's email on record.
    pub email: Option<&'a str>,
}

/// The portal username after a reset. An emailed reset makes the address the mail goes to
/// the username (a corrected address is what the client will type), unless another client
/// — a sibling sharing a parent's address — has it. Otherwise the current username stays; a
/// new account gets the email, or `first.last` (with a number if needed).
pub fn choose_portal_username(
    db: &dyn Db,
    who: &PortalIdentity<'_>,
    sent_to: Option<&Email>,
) -> Result<String, StorageError> {
    let id = who.client_id;
    if let Some(email) = sent_to
        && !username_taken(db, id, email.as_ref())?
    {
        return Ok(email.to_string());
    }
    let account = Account {
        kind: AccountKind::Client,
        id,
    };
    if let Some(current) = username(db, account)? {
        return Ok(current);
    }
    if let Some(email) = who.email.and_then(|e| Email::parse(e).ok())
        && !username_taken(db, id, email.as_ref())?
    {
        return Ok(email.to_string());
    }
    let base: String = format!("{}.{}", who.first_name, who.last_name)
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let base = if base.trim_matches('.').is_empty() {
        format!("client{id}")
    } else {
        base
    };
    for n in 1..1000 {
        let candidate = if n == 1 {
            base.clone()
        } else {
            format!("{base}{n}")
        };
        if !username_taken(db, id, &candidate)? {
            return Ok(candidate);
        }
    }
    Ok(format!("client{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::World;

    #[test]
    fn the_lockout_key_ignores_case_and_spaces_and_hides_the_name() {
        let k = lockout_key(AccountKind::Staff, " Casey.Manager@Example.org ");
        assert_eq!(
            k,
            lockout_key(AccountKind::Staff, "casey.manager@example.org")
        );
        assert_ne!(
            k,
            lockout_key(AccountKind::Client, "casey.manager@example.org")
        );
        assert!(!k.contains("casey"));
    }

    #[test]
    fn own_words_hold_the_name_and_addresses() {
        let w = World::new();
        let jane = w
            .raw()
            .execute("SELECT id FROM clients WHERE first_name = 'Jane'", &[])
            .unwrap()
            .first()
            .and_then(|r| r.int(0))
            .unwrap();
        let words = own_words(
            &w.db,
            Account {
                kind: AccountKind::Client,
                id: jane,
            },
        )
        .unwrap();
        for word in ["jane", "doe", "jdoe123@hotmail1.cmo", "jdoe123"] {
            assert!(words.contains(word), "{word}");
        }
    }
}
