//! Secret tokens: sessions (in key-value) and one-time change and reset tokens (in SQLite).
//! Only a SHA-256 of a token is ever stored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{Account, AccountKind, Token};
use crate::ports::{Db, Kv, StorageError, random_bytes};

/// A new 256-bit token, URL-safe.
pub fn new_token() -> Result<Token, StorageError> {
    Ok(Token::new(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)))
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A session as stored under `session/<hash>`.
#[derive(Serialize, Deserialize)]
struct StoredSession {
    kind: String,
    id: i64,
    epoch: i64,
    created_at: i64,
    last_seen_at: i64,
}

/// Idle and absolute session lifetimes, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub idle: i64,
    pub absolute: i64,
}

fn session_key(token: &str) -> String {
    session_key_of_hash(&token_hash(token))
}

fn session_key_of_hash(hash: &str) -> String {
    format!("session/{hash}")
}

/// The account's current session epoch; sessions of an older epoch are revoked.
fn current_epoch(db: &dyn Db, account: Account) -> Result<Option<i64>, StorageError> {
    Ok(db
        .execute(
            "SELECT session_epoch FROM credentials WHERE clinic_id = ?1 AND owner_kind = ? AND owner_id = ?",
            &[account.kind.as_str().into(), account.id.into()],
        )?
        .first()
        .and_then(|r| r.int(0)))
}

/// How many sessions past their absolute lifetime one new session sweeps from key-value.
const SWEEP: i64 = 50;

/// Starts a session for `account`; the token goes to the client's cookie only. The session is
/// also listed in `session_index` (by its key's hash, never the token) so that, abandoned, it
/// is deleted from key-value once its absolute lifetime has passed: each new session sweeps up
/// to [`SWEEP`] such, so the store holds no more sessions than can still be valid, plus a few.
pub fn start_session(
    db: &dyn Db,
    kv: &dyn Kv,
    account: Account,
    now: i64,
    limits: SessionLimits,
) -> Result<Token, StorageError> {
    sweep_sessions(db, kv, now - limits.absolute)?;
    let epoch = current_epoch(db, account)?.unwrap_or(0);
    let token = new_token()?;
    let stored = StoredSession {
        kind: account.kind.as_str().into(),
        id: account.id,
        epoch,
        created_at: now,
        last_seen_at: now,
    };
    let bytes = serde_json::to_vec(&stored).map_err(|e| StorageError::new(e.to_string()))?;
    kv.set(&session_key(token.expose()), &bytes)?;
    db.execute(
        "INSERT INTO session_index (clinic_id, token_hash, started_at) VALUES (?1, ?, ?)",
        &[token_hash(token.expose()).into(), now.into()],
    )?;
    Ok(token)
}

/// Deletes up to [`SWEEP`] sessions started before `before` from key-value, with their index
/// rows. Deleting one that already ended (signed out, expired and seen) changes nothing.
fn sweep_sessions(db: &dyn Db, kv: &dyn Kv, before: i64) -> Result<(), StorageError> {
    let stale = db.execute(
        &format!(
            "DELETE FROM session_index WHERE clinic_id = ?1 AND token_hash IN
             (SELECT token_hash FROM session_index WHERE clinic_id = ?1 AND started_at < ? ORDER BY started_at LIMIT {SWEEP})
             RETURNING token_hash"
        ),
        &[before.into()],
    )?;
    for row in stale.iter() {
        if let Some(hash) = row.text(0) {
            kv.delete(&session_key_of_hash(hash))?;
        }
    }
    Ok(())
}

/// The account a session token belongs to, if the session is still valid; refreshes its
/// idle timer (at most once a minute, to spare writes).
pub fn authenticate(
    db: &dyn Db,
    kv: &dyn Kv,
    token: &str,
    now: i64,
    limits: SessionLimits,
) -> Result<Option<Account>, StorageError> {
    let key = session_key(token);
    let Some(bytes) = kv.get(&key)? else {
        return Ok(None);
    };
    let Ok(mut s) = serde_json::from_slice::<StoredSession>(&bytes) else {
        kv.delete(&key)?;
        return Ok(None);
    };
    let Some(kind) = AccountKind::from_db(&s.kind) else {
        return Ok(None);
    };
    let account = Account { kind, id: s.id };
    let expired = now - s.last_seen_at > limits.idle || now - s.created_at > limits.absolute;
    if expired || current_epoch(db, account)? != Some(s.epoch) {
        kv.delete(&key)?;
        return Ok(None);
    }
    if now - s.last_seen_at >= 60 {
        s.last_seen_at = now;
        let bytes = serde_json::to_vec(&s).map_err(|e| StorageError::new(e.to_string()))?;
        kv.set(&key, &bytes)?;
    }
    Ok(Some(account))
}

/// Removes a session's key by the hash its key carries (a deleted clinic's sessions).
pub fn forget_session(kv: &dyn Kv, hash: &str) -> Result<(), StorageError> {
    kv.delete(&session_key_of_hash(hash))
}

/// Ends one session.
pub fn end_session(db: &dyn Db, kv: &dyn Kv, token: &str) -> Result<(), StorageError> {
    kv.delete(&session_key(token))?;
    db.execute(
        "DELETE FROM session_index WHERE clinic_id = ?1 AND token_hash = ?",
        &[token_hash(token).into()],
    )?;
    Ok(())
}

/// Revokes every session of the account (the next check of each fails).
pub fn revoke_all_sessions(db: &dyn Db, account: Account) -> Result<(), StorageError> {
    db.execute(
        "UPDATE credentials SET session_epoch = session_epoch + 1 WHERE clinic_id = ?1 AND owner_kind = ? AND owner_id = ?",
        &[account.kind.as_str().into(), account.id.into()],
    )?;
    Ok(())
}

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Finishing a forced password change after signing in with a temporary password.
    Change,
    /// Resetting a forgotten password from an emailed link.
    Reset,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Change => "change",
            Self::Reset => "reset",
        }
    }
}

/// Issues a one-time token for `account`, valid until `expires_at` (unix seconds).
pub fn issue_one_time(
    db: &dyn Db,
    purpose: Purpose,
    account: Account,
    expires_at: i64,
) -> Result<Token, StorageError> {
    let token = new_token()?;
    db.execute(
        "INSERT INTO one_time_tokens (clinic_id, token_hash, purpose, owner_kind, owner_id, expires_at) VALUES (?1, ?, ?, ?, ?, ?)",
        &[
            token_hash(token.expose()).into(),
            purpose.as_str().into(),
            account.kind.as_str().into(),
            account.id.into(),
            expires_at.into(),
        ],
    )?;
    Ok(token)
}

fn account_of(rows: &crate::ports::Rows) -> Option<Account> {
    let r = rows.first()?;
    Some(Account {
        kind: AccountKind::from_db(r.text(0)?)?,
        id: r.int(1)?,
    })
}

/// Whose a one-time token is, without using it up.
pub fn peek_one_time(
    db: &dyn Db,
    purpose: Purpose,
    token: &str,
    now: i64,
) -> Result<Option<Account>, StorageError> {
    let rows = db.execute(
        "SELECT owner_kind, owner_id FROM one_time_tokens WHERE clinic_id = ?1 AND token_hash = ? AND purpose = ? AND expires_at > ?",
        &[token_hash(token).into(), purpose.as_str().into(), now.into()],
    )?;
    Ok(account_of(&rows))
}

/// Uses a one-time token up: of parallel requests with the same token, exactly one gets the
/// account.
pub fn take_one_time(
    db: &dyn Db,
    purpose: Purpose,
    token: &str,
    now: i64,
) -> Result<Option<Account>, StorageError> {
    let rows = db.execute(
        "DELETE FROM one_time_tokens WHERE clinic_id = ?1 AND token_hash = ? AND purpose = ? RETURNING owner_kind, owner_id, expires_at",
        &[token_hash(token).into(), purpose.as_str().into()],
    )?;
    let valid = rows
        .first()
        .and_then(|r| r.int(2))
        .is_some_and(|exp| exp > now);
    Ok(if valid { account_of(&rows) } else { None })
}

/// Drops every one-time token of an account (a new reset makes older links useless).
pub fn drop_one_time_tokens(db: &dyn Db, account: Account) -> Result<(), StorageError> {
    db.execute(
        "DELETE FROM one_time_tokens WHERE clinic_id = ?1 AND owner_kind = ? AND owner_id = ?",
        &[account.kind.as_str().into(), account.id.into()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinics::{FIRST, Scoped};
    use crate::domain::AccountKind;
    use crate::native::{NativeDb, NativeKv};

    struct World {
        db: Scoped<NativeDb>,
        kv: NativeKv,
    }

    #[test]
    fn abandoned_sessions_leave_key_value_once_past_their_lifetime() {
        let w = World {
            db: Scoped::new(NativeDb::in_memory().unwrap(), FIRST),
            kv: NativeKv::in_memory().unwrap(),
        };
        crate::schema::migrate(w.db.unscoped()).unwrap();
        let casey = Account {
            kind: AccountKind::Staff,
            id: 2,
        };
        let limits = SessionLimits {
            idle: 60,
            absolute: 1000,
        };
        let stored = |t: &Token| w.kv.get(&session_key(t.expose())).unwrap().is_some();
        let old: Vec<Token> = (0..SWEEP + 5)
            .map(|_| start_session(&w.db, &w.kv, casey, 0, limits).unwrap())
            .collect();
        let signed_out = start_session(&w.db, &w.kv, casey, 10, limits).unwrap();
        end_session(&w.db, &w.kv, signed_out.expose()).unwrap();
        assert!(old.iter().all(stored));
        // Still within the lifetime: nothing is swept.
        let recent = start_session(&w.db, &w.kv, casey, 900, limits).unwrap();
        assert!(old.iter().all(stored));
        // Past it: each new session sweeps a bounded number, oldest first.
        start_session(&w.db, &w.kv, casey, 1500, limits).unwrap();
        let left = old.iter().filter(|t| stored(t)).count();
        assert_eq!(left, 5);
        let new = start_session(&w.db, &w.kv, casey, 1501, limits).unwrap();
        assert!(old.iter().all(|t| !stored(t)));
        assert!(stored(&recent) && stored(&new));
        let indexed =
            w.db.unscoped()
                .execute("SELECT count(*) FROM session_index", &[])
                .unwrap()
                .first()
                .and_then(|r| r.int(0));
        assert_eq!(indexed, Some(3), "recent, the one at 1500 and new");
    }
}
