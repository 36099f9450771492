//! What every test that ends with state on disk checks about it: the database is whole.

use caseport_shared::audit::{self, Verdict};
use caseport_shared::ports::Db;

fn one(db: &dyn Db, sql: &str) -> i64 {
    db.execute(sql, &[])
        .ok()
        .and_then(|rows| rows.first().and_then(|r| r.int(0)))
        .unwrap_or_else(|| panic!("{sql}"))
}

/// The database passes SQLite's integrity and foreign-key checks, every clinic's audit chain
/// verifies, every client has a case manager of its clinic, each clinic's client count is
/// right and no credential holds anything but an argon2id hash.
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
    let verdict = audit::verify_all(db).unwrap_or_else(|e| panic!("audit chain: {e}"));
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
        one(
            db,
            "SELECT count(*) FROM clinics k
             WHERE (SELECT value FROM counters WHERE name = 'clients/' || k.id)
                   IS NOT (SELECT count(*) FROM clients WHERE clinic_id = k.id)"
        ),
        0,
        "a clinic's client count is wrong"
    );
    assert_eq!(
        one(
            db,
            "SELECT count(*) FROM caseload_assignments a JOIN staff s ON s.id = a.staff_id
             JOIN clients c ON c.id = a.client_id
             WHERE s.clinic_id != a.clinic_id OR c.clinic_id != a.clinic_id"
        ),
        0,
        "an assignment joins two clinics"
    );
    assert_eq!(
        one(
            db,
            "SELECT count(*) FROM credentials WHERE phc NOT LIKE '$argon2id$%'"
        ),
        0
    );
}
