//! Lockout and rate limits for sign-in: an attempt is reserved by one atomic statement
//! before the password is checked, so parallel requests cannot get more checks than the
//! limit. Keys are hashes, the same for unknown and known accounts.

use sha2::{Digest, Sha256};

use crate::ports::{Db, StorageError, transaction};

/// A limit: `attempts` within `window` seconds, then locked for `lock` seconds.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub attempts: i64,
    pub window: i64,
    pub lock: i64,
}

/// Five wrong passwords per account in 15 minutes, then 15 minutes locked.
pub const PER_ACCOUNT: Limit = Limit {
    attempts: 5,
    window: 900,
    lock: 900,
};
/// A hundred sign-in attempts per client address in 15 minutes.
pub const PER_ADDRESS: Limit = Limit {
    attempts: 100,
    window: 900,
    lock: 900,
};
/// Three reset emails per address in an hour.
pub const FORGOT_PER_EMAIL: Limit = Limit {
    attempts: 3,
    window: 3600,
    lock: 3600,
};
/// Twenty reset requests per client address in an hour.
pub const FORGOT_PER_ADDRESS: Limit = Limit {
    attempts: 20,
    window: 3600,
    lock: 3600,
};

/// The stored key for what is being limited, e.g. `("account", "staff:casey@…")`.
pub fn key(scope: &str, subject: &str) -> String {
    let digest = Sha256::digest(format!("{scope}\u{0}{}", subject.to_lowercase()).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reserves one attempt. `Err(seconds)` means locked: retry after that many seconds.
pub fn reserve(
    db: &dyn Db,
    key: &str,
    limit: Limit,
    now: i64,
) -> Result<Result<(), u64>, StorageError> {
    transaction(db, || {
        db.execute(
            "DELETE FROM sign_in_throttle WHERE key = ? AND window_started_at <= ? AND locked_until <= ?",
            &[key.into(), (now - limit.window).into(), now.into()],
        )?;
        let rows = db.execute(
            "INSERT INTO sign_in_throttle (key, attempts, window_started_at) VALUES (?, 1, ?)
             ON CONFLICT (key) DO UPDATE SET attempts = attempts + 1
             RETURNING attempts, locked_until",
            &[key.into(), now.into()],
        )?;
        let row = rows.first();
        let attempts = row.and_then(|r| r.int(0)).unwrap_or(1);
        let locked_until = row.and_then(|r| r.int(1)).unwrap_or(0);
        if locked_until > now {
            return Ok(Err((locked_until - now) as u64));
        }
        if attempts > limit.attempts {
            let until = now + limit.lock;
            db.execute(
                "UPDATE sign_in_throttle SET locked_until = ? WHERE key = ?",
                &[until.into(), key.into()],
            )?;
            return Ok(Err(limit.lock as u64));
        }
        Ok(Ok(()))
    })
}

/// Gives back one reserved attempt (a sign-in from this address succeeded).
pub fn refund(db: &dyn Db, key: &str) -> Result<(), StorageError> {
    db.execute(
        "UPDATE sign_in_throttle SET attempts = max(attempts - 1, 0) WHERE key = ?",
        &[key.into()],
    )?;
    Ok(())
}

/// Whether a key is locked now.
pub fn is_locked(db: &dyn Db, key: &str, now: i64) -> Result<bool, StorageError> {
    Ok(db
        .execute(
            "SELECT 1 FROM sign_in_throttle WHERE key = ? AND locked_until > ?",
            &[key.into(), now.into()],
        )?
        .first()
        .is_some())
}

/// Forgets the attempts of a key (after a successful sign-in).
pub fn clear(db: &dyn Db, key: &str) -> Result<(), StorageError> {
    db.execute("DELETE FROM sign_in_throttle WHERE key = ?", &[key.into()])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::NativeDb;
    use crate::schema::migrate;

    fn db() -> NativeDb {
        let db = NativeDb::in_memory().unwrap();
        migrate(&db).unwrap();
        db
    }

    #[test]
    fn the_sixth_attempt_is_locked_with_a_retry_time() {
        let db = db();
        let k = key("account", "staff:x@example.org");
        for _ in 0..5 {
            assert_eq!(reserve(&db, &k, PER_ACCOUNT, 1000).unwrap(), Ok(()));
        }
        assert_eq!(reserve(&db, &k, PER_ACCOUNT, 1000).unwrap(), Err(900));
        assert_eq!(reserve(&db, &k, PER_ACCOUNT, 1100).unwrap(), Err(800));
        // After the lock and the window have passed, attempts start again.
        assert_eq!(reserve(&db, &k, PER_ACCOUNT, 1000 + 901).unwrap(), Ok(()));
    }

    #[test]
    fn clearing_forgets_failures() {
        let db = db();
        let k = key("account", "a");
        for _ in 0..4 {
            reserve(&db, &k, PER_ACCOUNT, 0).unwrap().unwrap();
        }
        clear(&db, &k).unwrap();
        for _ in 0..5 {
            assert_eq!(reserve(&db, &k, PER_ACCOUNT, 0).unwrap(), Ok(()));
        }
    }

    #[test]
    fn a_refund_gives_one_attempt_back() {
        let db = db();
        let k = key("address", "10.0.0.1");
        let limit = Limit {
            attempts: 2,
            window: 900,
            lock: 900,
        };
        for _ in 0..10 {
            reserve(&db, &k, limit, 0).unwrap().unwrap();
            refund(&db, &k).unwrap();
        }
        assert_eq!(reserve(&db, &k, limit, 0).unwrap(), Ok(()));
        assert_eq!(reserve(&db, &k, limit, 0).unwrap(), Ok(()));
        assert!(reserve(&db, &k, limit, 0).unwrap().is_err());
    }

    #[test]
    fn keys_hide_the_subject_and_ignore_case() {
        let k = key("account", "staff:Casey@Example.org");
        assert_eq!(k, key("account", "staff:casey@example.org"));
        assert!(!k.contains("casey"));
        assert_ne!(k, key("address", "staff:casey@example.org"));
    }
}
