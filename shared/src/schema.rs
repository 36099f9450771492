//! The SQLite schema and its versioned migrations (`PRAGMA user_version`).
//!
//! Whichever component first sees an old schema migrates it, inside `BEGIN IMMEDIATE`, and
//! reads the version again under the write lock: concurrent first requests serialise, and
//! only one of them applies each migration.

use crate::ports::{Db, StorageError, transaction};

/// Each migration is a list of single statements (Spin's `execute` runs one at a time).
/// Never edit a migration that has shipped; add the next one.
const MIGRATIONS: &[&[&str]] = &[
    &[
        "CREATE TABLE staff (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        display_name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('case_manager', 'admin')),
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
        created_at TEXT NOT NULL
    )",
        "CREATE TABLE clients (
        id INTEGER PRIMARY KEY,
        first_name TEXT NOT NULL,
        middle_name TEXT NOT NULL DEFAULT '',
        last_name TEXT NOT NULL,
        dob TEXT NOT NULL,
        email TEXT,
        phone TEXT,
        version INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
    )",
        "CREATE INDEX clients_by_name ON clients (last_name COLLATE NOCASE, first_name COLLATE NOCASE, id)",
        "CREATE TABLE caseload_assignments (
        staff_id INTEGER NOT NULL REFERENCES staff (id),
        client_id INTEGER NOT NULL REFERENCES clients (id),
        role TEXT NOT NULL CHECK (role IN ('primary_case_manager', 'support_primary_staff')),
        date_assigned TEXT NOT NULL,
        PRIMARY KEY (staff_id, client_id)
    ) WITHOUT ROWID",
        "CREATE INDEX assignments_by_client ON caseload_assignments (client_id)",
        // One row per account that can sign in; `username` is the staff email or the client's
        // portal username. `session_epoch` grows when all sessions of the account are revoked.
        "CREATE TABLE credentials (
        owner_kind TEXT NOT NULL CHECK (owner_kind IN ('staff', 'client')),
        owner_id INTEGER NOT NULL,
        username TEXT NOT NULL COLLATE NOCASE,
        phc TEXT NOT NULL,
        must_change INTEGER NOT NULL DEFAULT 0,
        temp_expires_at TEXT,
        changed_at TEXT NOT NULL,
        last_sign_in_at TEXT,
        session_epoch INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (owner_kind, owner_id)
    )",
        "CREATE UNIQUE INDEX credentials_by_username ON credentials (owner_kind, username)",
        // Sign-in attempts per account key and per client address, keyed by a hash so the table
        // says nothing about which accounts exist. In SQLite, not key-value: an attempt is
        // reserved by one atomic statement, which Spin's key-value store cannot do.
        "CREATE TABLE sign_in_throttle (
        key TEXT PRIMARY KEY,
        attempts INTEGER NOT NULL,
        window_started_at INTEGER NOT NULL,
        locked_until INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID",
        // Change and reset tokens, stored as hashes and taken by one DELETE … RETURNING, so a
        // token can be used once even by parallel requests.
        "CREATE TABLE one_time_tokens (
        token_hash TEXT PRIMARY KEY,
        purpose TEXT NOT NULL CHECK (purpose IN ('change', 'reset')),
        owner_kind TEXT NOT NULL,
        owner_id INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID",
        "CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )",
        "CREATE INDEX audit_by_subject ON audit_log (subject, seq)",
        "CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
        "CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    ],
    &[
        // Searching by first name uses its own index (a search is a range on one of the two).
        "CREATE INDEX clients_by_first_name ON clients (first_name COLLATE NOCASE, last_name COLLATE NOCASE, id)",
        "CREATE INDEX clients_by_dob ON clients (dob, id)",
        // Show All Clients' total without counting every row.
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT INTO counters (name, value) SELECT 'clients', count(*) FROM clients",
        "CREATE TRIGGER clients_counted_insert AFTER INSERT ON clients
        BEGIN UPDATE counters SET value = value + 1 WHERE name = 'clients'; END",
        "CREATE TRIGGER clients_counted_delete AFTER DELETE ON clients
        BEGIN UPDATE counters SET value = value - 1 WHERE name = 'clients'; END",
    ],
    &[
        // Every email Caseport hands to a provider: to whom, why, the provider's message id,
        // and where it got to. Never its content, so never a password. `public_id` travels
        // with the email as metadata so the provider's webhooks find the row.
        "CREATE TABLE mail_deliveries (
        id INTEGER PRIMARY KEY,
        public_id TEXT NOT NULL UNIQUE,
        client_id INTEGER REFERENCES clients (id),
        purpose TEXT NOT NULL CHECK (purpose IN ('temporary_password', 'reset_link')),
        provider TEXT NOT NULL,
        to_address TEXT NOT NULL,
        provider_message_id TEXT,
        status TEXT NOT NULL CHECK (status IN ('sending', 'accepted', 'delivered', 'bounced', 'failed')),
        detail TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        events TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )",
        "CREATE INDEX mail_deliveries_by_message ON mail_deliveries (provider, provider_message_id)",
        // Each reset of a client's portal password, keyed by the caller's idempotency key.
        // An emailed reset is `pending` while its email is on the way: the new password's
        // hash waits in `pending_phc` and becomes the credential only once the provider has
        // the email (or the client signs in with it). `answer` is what a repeat of the same
        // key gets back; it never holds a password.
        "CREATE TABLE portal_resets (
        id INTEGER PRIMARY KEY,
        client_id INTEGER NOT NULL REFERENCES clients (id),
        idempotency_key TEXT NOT NULL,
        requested_by INTEGER NOT NULL REFERENCES staff (id),
        delivery TEXT NOT NULL CHECK (delivery IN ('email', 'display', 'admin_set')),
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'shown', 'set', 'failed', 'superseded')),
        username TEXT NOT NULL COLLATE NOCASE,
        pending_phc TEXT,
        temp_expires_at TEXT,
        mail_delivery_id INTEGER REFERENCES mail_deliveries (id),
        answer_status INTEGER,
        answer TEXT,
        created_at TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        UNIQUE (client_id, idempotency_key)
    )",
        "CREATE INDEX portal_resets_by_client ON portal_resets (client_id, id)",
        "CREATE INDEX portal_resets_pending ON portal_resets (username) WHERE status = 'pending'",
    ],
];

/// The schema version this code expects.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

fn user_version(db: &dyn Db) -> Result<i64, StorageError> {
    db.execute("PRAGMA user_version", &[])?
        .first()
        .and_then(|r| r.int(0))
        .ok_or_else(|| StorageError("PRAGMA user_version gave no answer".into()))
}

/// Brings the schema up to [`VERSION`]; cheap when it is there already.
pub fn migrate(db: &dyn Db) -> Result<(), StorageError> {
    let seen = user_version(db)?;
    if seen == VERSION {
        return Ok(());
    }
    if seen > VERSION {
        return Err(StorageError(format!(
            "the database has schema version {seen}, newer than this code's {VERSION}; deploy the newer components"
        )));
    }
    transaction(db, || {
        let current = user_version(db)?;
        for migration in MIGRATIONS.iter().skip(current.max(0) as usize) {
            for statement in *migration {
                db.execute(statement, &[])?;
            }
        }
        db.execute(&format!("PRAGMA user_version = {VERSION}"), &[])?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::NativeDb;

    #[test]
    fn migrating_twice_changes_nothing() {
        let db = NativeDb::in_memory().unwrap();
        migrate(&db).unwrap();
        assert_eq!(user_version(&db).unwrap(), VERSION);
        migrate(&db).unwrap();
        assert_eq!(user_version(&db).unwrap(), VERSION);
    }

    #[test]
    fn concurrent_first_requests_migrate_once() {
        let dir = tempfile_dir();
        let path = dir.join("db.sqlite");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || migrate(&NativeDb::open(&path).unwrap()))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        assert_eq!(
            user_version(&NativeDb::open(&path).unwrap()).unwrap(),
            VERSION
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let db = NativeDb::in_memory().unwrap();
        db.execute("PRAGMA user_version = 999", &[]).unwrap();
        assert!(migrate(&db).unwrap_err().0.contains("newer than this code"));
    }

    #[test]
    fn the_audit_log_refuses_updates() {
        let db = NativeDb::in_memory().unwrap();
        migrate(&db).unwrap();
        db.execute(
            "INSERT INTO audit_log (at, actor, action, detail, prev_hash, hash) VALUES ('t', 'a', 'x', '{}', '', '')",
            &[],
        )
        .unwrap();
        assert!(db.execute("UPDATE audit_log SET actor = 'b'", &[]).is_err());
        assert!(db.execute("DELETE FROM audit_log", &[]).is_err());
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "caseport-schema-{}-{:x}",
            std::process::id(),
            u64::from_le_bytes(crate::ports::random_bytes::<8>().unwrap())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
