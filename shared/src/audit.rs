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
    // `seq` numbers every clinic's entries together; the chain links a clinic's own.
    let last = db.execute(
        "SELECT (SELECT max(seq) FROM audit_log),
                (SELECT hash FROM audit_log WHERE clinic_id = ?1 ORDER BY seq DESC LIMIT 1)",
        &[],
    )?;
    let row = last.first();
    let seq = row.and_then(|r| r.int(0)).unwrap_or(0) + 1;
    let prev = row
        .and_then(|r| r.text(1).map(str::to_string))
        .unwrap_or_else(|| GENESIS.to_string());
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
        "INSERT INTO audit_log (clinic_id, seq, at, actor, action, subject, detail, prev_hash, hash) VALUES (?1, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log
         WHERE clinic_id = ?1 ORDER BY seq",
        &[],
    )?;
    let mut prev = GENESIS.to_string();
    let mut count = 0;
    for r in rows.iter() {
        let seq = r.int(0).unwrap_or(-1);
        if r.text(6) != Some(prev.as_str()) {
            return Ok(Verdict::Broken {
                seq,
                why: "an entry is missing, or the link to the previous entry does not match",
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

/// [`verify`] for every clinic's chain (`db` unscoped): the first break found, or how many
/// entries all the chains hold.
pub fn verify_all(db: &dyn Db) -> Result<Verdict, StorageError> {
    let clinics = db.execute("SELECT id FROM clinics ORDER BY id", &[])?;
    let mut entries = 0;
    for id in clinics.iter().filter_map(|r| r.int(0)) {
        match verify(&crate::clinics::Scoped::new(
            db,
            crate::clinics::ClinicId(id),
        ))? {
            Verdict::Intact { entries: n } => entries += n,
            broken => return Ok(broken),
        }
    }
    Ok(Verdict::Intact { entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinics::{ClinicId, FIRST, Scoped};
    use crate::native::NativeDb;
    use crate::ports::SystemClock;
    use crate::schema::migrate;

    fn db_with(n: usize) -> NativeDb {
        let db = NativeDb::in_memory().unwrap();
        migrate(&db).unwrap();
        for i in 0..n {
            record(
                &Scoped::new(&db, FIRST),
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
        assert_eq!(
            verify_all(&db_with(5)).unwrap(),
            Verdict::Intact { entries: 5 }
        );
        assert_eq!(
            verify_all(&db_with(0)).unwrap(),
            Verdict::Intact { entries: 0 }
        );
    }

    #[test]
    fn an_edited_entry_is_detected() {
        let db = db_with(5);
        db.execute("DROP TRIGGER audit_log_append_only_update", &[])
            .unwrap();
        db.execute("UPDATE audit_log SET actor = 'staff:2' WHERE seq = 3", &[])
            .unwrap();
        assert_eq!(
            verify_all(&db).unwrap(),
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
            verify_all(&db).unwrap(),
            Verdict::Broken { seq: 3, .. }
        ));
    }

    #[test]
    fn each_clinic_has_its_own_chain() {
        let db = db_with(2);
        db.execute(
            "INSERT INTO clinics (id, name, created_at) VALUES (2, 'South', 'now')",
            &[],
        )
        .unwrap();
        let south = Scoped::new(&db, ClinicId(2));
        for n in 0..3 {
            record(
                &south,
                &SystemClock,
                "staff:9",
                "sign_in",
                None,
                serde_json::json!({ "n": n }),
            )
            .unwrap();
            record(
                &Scoped::new(&db, FIRST),
                &SystemClock,
                "staff:1",
                "sign_in",
                None,
                serde_json::json!({}),
            )
            .unwrap();
        }
        assert_eq!(verify(&south).unwrap(), Verdict::Intact { entries: 3 });
        assert_eq!(
            verify(&Scoped::new(&db, FIRST)).unwrap(),
            Verdict::Intact { entries: 5 }
        );
        assert_eq!(verify_all(&db).unwrap(), Verdict::Intact { entries: 8 });
        // South's first entry starts its own chain.
        let first = db
            .execute(
                "SELECT prev_hash FROM audit_log WHERE clinic_id = 2 ORDER BY seq LIMIT 1",
                &[],
            )
            .unwrap();
        assert_eq!(
            first.first().and_then(|r| r.string(0).ok()).as_deref(),
            Some(GENESIS)
        );
    }
}
