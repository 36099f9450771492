//! What every test that ends with state on disk checks about it: the database is whole.

use caseport_shared::audit::{self, Verdict};
use caseport_shared::ports::Db;

fn one(db: &dyn Db, sql: &str) -> i64 {
    db.execute(sql, &[])
        .ok()
        .and_then(|rows| rows.first().and_then(|r| r.int(0)))
        .unwrap_or_else(|| panic!("{sql}"))
}

/// The database passes SQLite's integrity and foreign-key checks, the audit chain verifies,
/// every client has a case manager, the client count is right and no credential holds
/// anything but an argon2id hash.
pub fn assert_whole(db: &dyn Db) {
    let run = |sql: &str| {
        db.execute(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    let integrity = run("PRAGMA integrity_check");
    assert_eq!(
        integrity
            .first()
            .and_then(|r| r.text(0).map(str::to_string))
            .as_deref(),
        Some("ok")
    );
    assert!(
        run("PRAGMA foreign_key_check").rows.is_empty(),
        "a reference points nowhere"
    );
    let verdict = audit::verify(db).unwrap_or_else(|e| panic!("audit chain: {e}"));
    assert!(matches!(verdict, Verdict::Intact { .. }), "{verdict:?}");
    assert_eq!(
        one(
            db,
            "SELECT count(*) FROM clients c WHERE NOT EXISTS (SELECT 1 FROM caseload_assignments a WHERE a.client_id = c.id)"
        ),
        0,
        "a client without its case manager"
    );
    assert_eq!(
        one(db, "SELECT value FROM counters WHERE name = 'clients'"),
        one(db, "SELECT count(*) FROM clients")
    );
    assert_eq!(
        one(
            db,
            "SELECT count(*) FROM credentials WHERE phc NOT LIKE '$argon2id$%'"
        ),
        0
    );
}
