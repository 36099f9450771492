//! Throttling of sign-in and other guessable requests, after OWASP's and NIST SP 800-63B-4's
//! advice: slow guessing down without letting a stranger lock a person out.
//!
//! Three counters meet at each sign-in (see `auth`): one per account and client network,
//! whose delays grow with each failure past a few (only that network is slowed); one per
//! account per day, a hard limit that only many networks together can reach (then the account
//! is locked until a staff member resets it); one per client network, against spraying many
//! accounts. An attempt is reserved by one atomic statement before the password is checked,
//! so parallel requests cannot get more checks than the limit. Keys are hashes, the same for
//! unknown and known accounts. A refused request writes no row: it is counted on its key's
//! row, and only the first refusal of a lock is worth an audit entry.

use sha2::{Digest, Sha256};

use crate::ports::{Db, StorageError, transaction};

/// A limit: `attempts` within `window` seconds; the attempt that reaches it locks the key for
/// `lock` seconds, and each attempt after that (once the lock has passed) for twice as long
/// as the one before, up to `max_lock`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub attempts: i64,
    pub window: i64,
    pub lock: i64,
    pub max_lock: i64,
}

/// Per account and client network: five attempts, then 30 s, 1 min, 2 min … up to 15 min
/// between attempts, within an hour.
pub const PER_ACCOUNT_AND_NETWORK: Limit = Limit {
    attempts: 5,
    window: 3600,
    lock: 30,
    max_lock: 900,
};
/// Per account, from anywhere: 100 failed attempts a day (NIST's most), then locked for the
/// rest of the day unless a staff member resets the password.
pub const PER_ACCOUNT_DAY: Limit = Limit {
    attempts: 100,
    window: 86_400,
    lock: 86_400,
    max_lock: 86_400,
};
/// Per client network, across accounts: a hundred failed attempts in 15 minutes.
pub const PER_NETWORK: Limit = Limit {
    attempts: 100,
    window: 900,
    lock: 900,
    max_lock: 900,
};
/// First-administrator setup, per client network: ten tries an hour.
pub const SETUP_PER_NETWORK: Limit = Limit {
    attempts: 10,
    window: 3600,
    lock: 3600,
    max_lock: 3600,
};
/// Three reset emails per address in an hour.
pub const FORGOT_PER_EMAIL: Limit = Limit {
    attempts: 3,
    window: 3600,
    lock: 3600,
    max_lock: 3600,
};
/// Twenty reset requests per client network in an hour.
pub const FORGOT_PER_NETWORK: Limit = Limit {
    attempts: 20,
    window: 3600,
    lock: 3600,
    max_lock: 3600,
};

/// The stored key for what is being limited, e.g. `("account", "staff:casey@…")`.
pub fn key(scope: &str, subject: &str) -> String {
    let digest = Sha256::digest(format!("{scope}\u{0}{}", subject.to_lowercase()).as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Seconds until the key takes attempts again.
    pub retry_after: u64,
    /// The first refusal since the key was locked: the one worth recording.
    pub first: bool,
}

/// Reserves one attempt on `key`, answering how many the key has counted with it. `account`,
/// when set, is the account key this one belongs to, so that [`clear_account`] lifts it too.
pub fn reserve(
    db: &dyn Db,
    key: &str,
    limit: Limit,
    now: i64,
    account: Option<&str>,
) -> Result<Result<i64, Refused>, StorageError> {
    // A locked key is refused without taking the write lock for a transaction: one counting
    // statement, on a row that exists already.
    if let Some(refused) = count_refusal(db, key, now)? {
        return Ok(Err(refused));
    }
    transaction(db, || {
        db.execute(
            "DELETE FROM sign_in_throttle WHERE clinic_id = ?1 AND key = ? AND window_started_at <= ? AND locked_until <= ?",
            &[key.into(), (now - limit.window).into(), now.into()],
        )?;
        let rows = db.execute(
            "INSERT INTO sign_in_throttle (clinic_id, key, attempts, window_started_at, account) VALUES (?1, ?, 1, ?, ?)
             ON CONFLICT (clinic_id, key) DO UPDATE SET attempts = attempts + 1 WHERE locked_until <= ?
             RETURNING attempts",
            &[key.into(), now.into(), account.map(str::to_string).into(), now.into()],
        )?;
        let Some(attempts) = rows.first().and_then(|r| r.int(0)) else {
            // Locked by a parallel request since the check above.
            return Ok(Err(count_refusal(db, key, now)?.unwrap_or(Refused {
                retry_after: 1,
                first: false,
            })));
        };
        if let Some(lock) = limit.lock_after(attempts - 1) {
            db.execute(
                "UPDATE sign_in_throttle SET locked_until = ?2, refused = 0 WHERE clinic_id = ?1 AND key = ?",
                &[(now + lock).into(), key.into()],
            )?;
        }
        Ok(Ok(attempts))
    })
}

impl Limit {
    /// How long the lock is that the attempt after `counted` ones sets, if it sets one.
    pub fn lock_after(self, counted: i64) -> Option<i64> {
        let next = counted + 1;
        if next < self.attempts {
            return None;
        }
        let doublings = u32::try_from((next - self.attempts).min(30)).unwrap_or(30);
        Some(
            self.lock
                .saturating_mul(1_i64 << doublings)
                .min(self.max_lock),
        )
    }
}

/// Counts a refusal if `key` is locked now.
fn count_refusal(db: &dyn Db, key: &str, now: i64) -> Result<Option<Refused>, StorageError> {
    let locked = db.execute(
        "SELECT locked_until FROM sign_in_throttle WHERE clinic_id = ?1 AND key = ? AND locked_until > ?",
        &[key.into(), now.into()],
    )?;
    let Some(until) = locked.first().and_then(|r| r.int(0)) else {
        return Ok(None);
    };
    let counted = db.execute(
        "UPDATE sign_in_throttle SET refused = refused + 1 WHERE clinic_id = ?1 AND key = ? RETURNING refused",
        &[key.into()],
    )?;
    Ok(Some(Refused {
        retry_after: u64::try_from(until - now).unwrap_or(1).max(1),
        first: counted.first().and_then(|r| r.int(0)) == Some(1),
    }))
}

/// Gives back the one attempt this request reserved under `limit` (it succeeded, so it was
/// no failure), and the lock that attempt set when it reached the limit. Never more: other
/// attempts on the key stay counted.
pub fn refund(db: &dyn Db, key: &str, limit: Limit) -> Result<(), StorageError> {
    db.execute(
        "UPDATE sign_in_throttle SET attempts = max(attempts - 1, 0),
         locked_until = CASE WHEN attempts - 1 < ?2 THEN 0 ELSE locked_until END WHERE clinic_id = ?1 AND key = ?",
        &[limit.attempts.into(), key.into()],
    )?;
    Ok(())
}

/// Whether a key is locked now.
pub fn is_locked(db: &dyn Db, key: &str, now: i64) -> Result<bool, StorageError> {
    Ok(db
        .execute(
            "SELECT 1 FROM sign_in_throttle WHERE clinic_id = ?1 AND key = ? AND locked_until > ?",
            &[key.into(), now.into()],
        )?
        .first()
        .is_some())
}

/// Forgets the attempts of a key (after a successful sign-in).
pub fn clear(db: &dyn Db, key: &str) -> Result<(), StorageError> {
    db.execute(
        "DELETE FROM sign_in_throttle WHERE clinic_id = ?1 AND key = ?",
        &[key.into()],
    )?;
    Ok(())
}

/// Forgets an account's attempts from every network (a staff member reset its password).
pub fn clear_account(db: &dyn Db, account_key: &str) -> Result<(), StorageError> {
    db.execute(
        "DELETE FROM sign_in_throttle WHERE clinic_id = ?1 AND (key = ?2 OR account = ?2)",
        &[account_key.into()],
    )?;
    Ok(())
}

/// Every account key under a lock now, each with when its last lock ends: locks on the
/// account itself and on the account from one network.
pub fn account_locks(
    db: &dyn Db,
    now: i64,
) -> Result<std::collections::HashMap<String, i64>, StorageError> {
    let rows = db.execute(
        "SELECT coalesce(account, key), max(locked_until) FROM sign_in_throttle
         WHERE clinic_id = ?1 AND locked_until > ? GROUP BY 1",
        &[now.into()],
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.text(0)?.to_string(), r.int(1)?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinics::{ClinicId, FIRST, Scoped};
    use crate::native::NativeDb;
    use crate::schema::migrate;

    fn db() -> Scoped<NativeDb> {
        let db = NativeDb::in_memory().unwrap();
        migrate(&db).unwrap();
        Scoped::new(db, FIRST)
    }

    fn go(db: &dyn Db, k: &str, limit: Limit, now: i64) -> Result<(), u64> {
        reserve(db, k, limit, now, None)
            .unwrap()
            .map(|_| ())
            .map_err(|r| r.retry_after)
    }

    #[test]
    fn an_attempt_knows_its_count_and_the_lock_the_next_one_sets() {
        let db = db();
        let k = key("pair", "c");
        let limit = PER_ACCOUNT_AND_NETWORK;
        for n in 1..=4 {
            assert_eq!(reserve(&db, &k, limit, 0, None).unwrap(), Ok(n));
        }
        assert_eq!(limit.lock_after(3), None);
        assert_eq!(limit.lock_after(4), Some(30));
        assert_eq!(limit.lock_after(5), Some(60));
        assert_eq!(limit.lock_after(40), Some(900));
        assert_eq!(PER_ACCOUNT_DAY.lock_after(99), Some(86_400));
    }

    #[test]
    fn delays_grow_after_the_free_attempts() {
        let db = db();
        let k = key("pair", "staff:x@example.org|10.0.0.1");
        let limit = PER_ACCOUNT_AND_NETWORK;
        for _ in 0..5 {
            assert_eq!(go(&db, &k, limit, 1000), Ok(()));
        }
        assert_eq!(go(&db, &k, limit, 1000), Err(30));
        assert_eq!(go(&db, &k, limit, 1010), Err(20));
        assert_eq!(go(&db, &k, limit, 1030), Ok(()));
        assert_eq!(go(&db, &k, limit, 1031), Err(59));
        assert_eq!(go(&db, &k, limit, 1090), Ok(()));
        assert_eq!(go(&db, &k, limit, 1090), Err(120));
    }

    #[test]
    fn the_delay_stops_growing_at_the_most() {
        let db = db();
        let k = key("pair", "a");
        let mut now = 0;
        let mut longest = 0;
        for _ in 0..40 {
            match go(&db, &k, PER_ACCOUNT_AND_NETWORK, now) {
                Ok(()) => {}
                Err(wait) => {
                    longest = longest.max(wait);
                    now += i64::try_from(wait).unwrap();
                }
            }
        }
        assert_eq!(longest, 900);
    }

    #[test]
    fn refusals_are_counted_on_the_row_and_only_the_first_is_flagged() {
        let db = db();
        let k = key("pair", "b");
        for _ in 0..5 {
            go(&db, &k, PER_ACCOUNT_AND_NETWORK, 0).unwrap();
        }
        let first = reserve(&db, &k, PER_ACCOUNT_AND_NETWORK, 1, None).unwrap();
        assert!(matches!(first, Err(Refused { first: true, .. })));
        for _ in 0..100 {
            let again = reserve(&db, &k, PER_ACCOUNT_AND_NETWORK, 1, None).unwrap();
            assert!(matches!(again, Err(Refused { first: false, .. })));
        }
        let rows = db
            .unscoped()
            .execute("SELECT count(*), sum(refused) FROM sign_in_throttle", &[])
            .unwrap();
        let row = rows.first().unwrap();
        assert_eq!((row.int(0), row.int(1)), (Some(1), Some(101)));
    }

    #[test]
    fn a_refund_gives_back_only_this_attempt() {
        let db = db();
        let k = key("network", "10.0.0.1");
        let limit = Limit {
            attempts: 3,
            window: 900,
            lock: 900,
            max_lock: 900,
        };
        go(&db, &k, limit, 0).unwrap();
        go(&db, &k, limit, 0).unwrap();
        for _ in 0..10 {
            // Each success reaches the limit and is given back, lock and all.
            go(&db, &k, limit, 0).unwrap();
            refund(&db, &k, limit).unwrap();
        }
        // The two failures stay counted: one more reaches the limit, the next is refused.
        go(&db, &k, limit, 0).unwrap();
        assert!(go(&db, &k, limit, 0).is_err());
    }

    #[test]
    fn clearing_an_account_lifts_its_network_counters_too() {
        let db = db();
        let account = key("account", "client:jane");
        let pair = key("pair", "client:jane|10.0.0.1");
        for _ in 0..5 {
            reserve(&db, &pair, PER_ACCOUNT_AND_NETWORK, 0, Some(&account))
                .unwrap()
                .unwrap();
        }
        assert!(is_locked(&db, &pair, 1).unwrap());
        clear_account(&db, &account).unwrap();
        assert!(!is_locked(&db, &pair, 1).unwrap());
    }

    #[test]
    fn the_same_name_in_another_clinic_has_its_own_counter() {
        let north = db();
        let south = Scoped::new(north.unscoped(), ClinicId(2));
        let k = key("account", "staff:casey@example.org");
        for _ in 0..PER_ACCOUNT_AND_NETWORK.attempts {
            go(&north, &k, PER_ACCOUNT_AND_NETWORK, 0).unwrap();
        }
        assert!(go(&north, &k, PER_ACCOUNT_AND_NETWORK, 0).is_err());
        assert_eq!(go(&south, &k, PER_ACCOUNT_AND_NETWORK, 0), Ok(()));
        assert!(!is_locked(&south, &k, 0).unwrap());
    }

    #[test]
    fn keys_hide_the_subject_and_ignore_case() {
        let k = key("account", "staff:Casey@Example.org");
        assert_eq!(k, key("account", "staff:casey@example.org"));
        assert!(!k.contains("casey"));
        assert_ne!(k, key("address", "staff:casey@example.org"));
    }
}
