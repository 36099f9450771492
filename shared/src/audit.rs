//! The audit trail: append-only, each entry carrying the hash of the one before, so an
//! edited or removed entry is detectable by [`verify`]. Never holds a password or token.

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::ports::{Clock, Db, StorageError};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One thing that happened.
pub struct Entry<'a> {
    /// Who did it: `staff:<id>`, `client:<id>`, or `anonymous`.
    pub actor: String,
    /// What happened, as a stable snake_case verb such as `sign_in`.
    pub action: &'a str,
    /// What it happened to, such as `client:7`.
    pub subject: Option<String>,
    /// Details as JSON; never a secret.
    pub detail: Json,
}

fn entry_hash(
    prev: &str,
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    detail: &str,
) -> String {
    let canonical = serde_json::json!([prev, seq, at, actor, action, subject, detail]).to_string();
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends an entry. Call it inside a write transaction, so the chain cannot fork.
pub fn append(db: &dyn Db, clock: &dyn Clock, entry: Entry<'_>) -> Result<(), StorageError> {
    let last = db.execute(
        "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
        &[],
    )?;
    let (seq, prev) = match last.first() {
        Some(r) => (r.int(0).unwrap_or(0) + 1, r.string(1)?),
        None => (1, GENESIS.to_string()),
    };
    let at = clock.now().to_string();
    let detail = entry.detail.to_string();
    let hash = entry_hash(
        &prev,
        seq,
        &at,
        &entry.actor,
        entry.action,
        entry.subject.as_deref(),
        &detail,
    );
    db.execute(
        "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        &[
            seq.into(),
            at.into(),
            entry.actor.into(),
            entry.action.into(),
            entry.subject.into(),
            detail.into(),
            prev.into(),
            hash.into(),
        ],
    )?;
    Ok(())
}

/// Where the chain breaks, if it does.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Intact { entries: usize },
    Broken { seq: i64, why: &'static str },
}

/// Recomputes every hash and link, oldest first.
pub fn verify(db: &dyn Db) -> Result<Verdict, StorageError> {
    let rows = db.execute(
        "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY seq",
        &[],
    )?;
    let mut prev = GENESIS.to_string();
    let mut count = 0;
    for (expected_seq, r) in (1..).zip(rows.iter()) {
        let seq = r.int(0).unwrap_or(-1);
        if seq != expected_seq {
            return Ok(Verdict::Broken {
                seq,
                why: "an entry is missing",
            });
        }
        if r.text(6) != Some(prev.as_str()) {
            return Ok(Verdict::Broken {
                seq,
                why: "the link to the previous entry does not match",
            });
        }
        let hash = entry_hash(
            &prev,
            seq,
            r.text(1).unwrap_or_default(),
            r.text(2).unwrap_or_default(),
            r.text(3).unwrap_or_default(),
            r.text(4),
            r.text(5).unwrap_or_default(),
        );
        if r.text(7) != Some(hash.as_str()) {
            return Ok(Verdict::Broken {
                seq,
                why: "the entry was changed after it was written",
            });
        }
        prev = hash;
        count += 1;
    }
    Ok(Verdict::Intact { entries: count })
}

/// Shorthand for the common case.
pub fn record(
    db: &dyn Db,
    clock: &dyn Clock,
    actor: &str,
    action: &str,
    subject: Option<&str>,
    detail: Json,
) -> Result<(), StorageError> {
    append(
        db,
        clock,
        Entry {
            actor: actor.to_string(),
            action,
            subject: subject.map(str::to_string),
            detail,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::NativeDb;
    use crate::ports::SystemClock;
    use crate::schema::migrate;

    fn db_with(n: usize) -> NativeDb {
        let db = NativeDb::in_memory().unwrap();
        migrate(&db).unwrap();
        for i in 0..n {
            record(
                &db,
                &SystemClock,
                "staff:1",
                "sign_in",
                None,
                serde_json::json!({ "n": i }),
            )
            .unwrap();
        }
        db
    }

    #[test]
    fn an_untouched_chain_verifies() {
        assert_eq!(verify(&db_with(5)).unwrap(), Verdict::Intact { entries: 5 });
        assert_eq!(verify(&db_with(0)).unwrap(), Verdict::Intact { entries: 0 });
    }

    #[test]
    fn an_edited_entry_is_detected() {
        let db = db_with(5);
        db.execute("DROP TRIGGER audit_log_append_only_update", &[])
            .unwrap();
        db.execute("UPDATE audit_log SET actor = 'staff:2' WHERE seq = 3", &[])
            .unwrap();
        assert_eq!(
            verify(&db).unwrap(),
            Verdict::Broken {
                seq: 3,
                why: "the entry was changed after it was written"
            }
        );
    }

    #[test]
    fn a_removed_entry_is_detected() {
        let db = db_with(5);
        db.execute("DROP TRIGGER audit_log_append_only_delete", &[])
            .unwrap();
        db.execute("DELETE FROM audit_log WHERE seq = 2", &[])
            .unwrap();
        assert!(matches!(
            verify(&db).unwrap(),
            Verdict::Broken { seq: 3, .. }
        ));
    }
}
