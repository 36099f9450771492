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
    &[
        // A notice to the previous address when a client's email changes is a delivery too.
        // SQLite cannot alter a CHECK, so the table is rebuilt under its own name (a rename
        // would rewrite portal_resets' reference to it): its rows wait in a scratch table
        // while it is dropped and created again. References are checked at COMMIT, by which
        // time every referenced row is back.
        "PRAGMA defer_foreign_keys = ON",
        "CREATE TABLE mail_deliveries_copy AS SELECT * FROM mail_deliveries",
        "DROP TABLE mail_deliveries",
        "CREATE TABLE mail_deliveries (
        id INTEGER PRIMARY KEY,
        public_id TEXT NOT NULL UNIQUE,
        client_id INTEGER REFERENCES clients (id),
        purpose TEXT NOT NULL CHECK (purpose IN ('temporary_password', 'reset_link', 'email_changed')),
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
        "INSERT INTO mail_deliveries SELECT * FROM mail_deliveries_copy",
        "DROP TABLE mail_deliveries_copy",
        "CREATE INDEX mail_deliveries_by_message ON mail_deliveries (provider, provider_message_id)",
        // Refusals of a locked key are counted on its row, not written one by one; a counter
        // of an account and a network names its account, so a reset lifts it too.
        "ALTER TABLE sign_in_throttle ADD COLUMN refused INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE sign_in_throttle ADD COLUMN account TEXT",
        "CREATE INDEX sign_in_throttle_by_account ON sign_in_throttle (account) WHERE account IS NOT NULL",
        // Webhook events already applied, by the provider's event id, so a replay changes
        // nothing. Kept for a week (far longer than any signature stays valid).
        "CREATE TABLE webhook_events (
        provider TEXT NOT NULL,
        event_id TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (provider, event_id)
    ) WITHOUT ROWID",
    ],
    &[
        // Search and sort keys of each client's names (`names::Keys`): case, accents and
        // apostrophes folded, written with the names; [`BACKFILLS`] fills them for the
        // clients already there. The caseload sorts by (last_key, first_key, id) and finds a
        // name's first word by a range on either key.
        "ALTER TABLE clients ADD COLUMN last_key TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE clients ADD COLUMN first_key TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE clients ADD COLUMN name_words TEXT NOT NULL DEFAULT ''",
        "DROP INDEX clients_by_name",
        "DROP INDEX clients_by_first_name",
        "CREATE INDEX clients_by_key ON clients (last_key, first_key, id)",
        "CREATE INDEX clients_by_first_key ON clients (first_key, last_key, id)",
    ],
    &[
        // Every session started, by the hash its key-value key carries (never the token), so
        // that sessions nobody signed out of are swept from key-value once past their absolute
        // lifetime (`tokens::start_session`).
        "CREATE TABLE session_index (
        token_hash TEXT PRIMARY KEY,
        started_at INTEGER NOT NULL
    ) WITHOUT ROWID",
        "CREATE INDEX session_index_by_start ON session_index (started_at)",
    ],
    &[
        // Several clinics on one deployment (`clinics`). Everything already here is clinic 1's,
        // which also serves every request while no host name is mapped. A clinic's own name,
        // sender, portal address and time zone override the deployment's variables; NULL
        // keeps them.
        "CREATE TABLE clinics (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
        mail_from TEXT,
        portal_url TEXT,
        time_zone TEXT,
        created_at TEXT NOT NULL
    )",
        "INSERT INTO clinics (id, created_at) VALUES (1, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
        // Clinic 1's count is the one counted so far (renamed below); each new clinic's
        // starts at zero.
        "CREATE TRIGGER clinic_counted AFTER INSERT ON clinics
        BEGIN INSERT INTO counters (name, value) VALUES ('clients/' || NEW.id, 0); END",
        // The host names each clinic answers on, as `clinics::normalise_host` writes them.
        "CREATE TABLE clinic_hosts (
        host TEXT PRIMARY KEY,
        clinic_id INTEGER NOT NULL REFERENCES clinics (id)
    ) WITHOUT ROWID",
        "CREATE INDEX clinic_hosts_by_clinic ON clinic_hosts (clinic_id)",
        // A staff email is unique within its clinic only: the table is rebuilt, as
        // mail_deliveries was in migration 4.
        "PRAGMA defer_foreign_keys = ON",
        "CREATE TABLE staff_copy AS SELECT * FROM staff",
        "DROP TABLE staff",
        "CREATE TABLE staff (
        id INTEGER PRIMARY KEY,
        clinic_id INTEGER NOT NULL REFERENCES clinics (id),
        email TEXT NOT NULL COLLATE NOCASE,
        display_name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('case_manager', 'admin')),
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
        created_at TEXT NOT NULL,
        UNIQUE (clinic_id, email)
    )",
        "INSERT INTO staff (id, clinic_id, email, display_name, role, status, created_at)
        SELECT id, 1, email, display_name, role, status, created_at FROM staff_copy",
        "DROP TABLE staff_copy",
        // SQLite adds a column with a default but without a reference while foreign keys are
        // on; the triggers below keep a row's clinic its owner's.
        "ALTER TABLE clients ADD COLUMN clinic_id INTEGER NOT NULL DEFAULT 1",
        "DROP INDEX clients_by_key",
        "DROP INDEX clients_by_first_key",
        "DROP INDEX clients_by_dob",
        "CREATE INDEX clients_by_key ON clients (clinic_id, last_key, first_key, id)",
        "CREATE INDEX clients_by_first_key ON clients (clinic_id, first_key, last_key, id)",
        "CREATE INDEX clients_by_dob ON clients (clinic_id, dob, id)",
        "UPDATE counters SET name = 'clients/1' WHERE name = 'clients'",
        "DROP TRIGGER clients_counted_insert",
        "DROP TRIGGER clients_counted_delete",
        "CREATE TRIGGER clients_counted_insert AFTER INSERT ON clients
        BEGIN UPDATE counters SET value = value + 1 WHERE name = 'clients/' || NEW.clinic_id; END",
        "CREATE TRIGGER clients_counted_delete AFTER DELETE ON clients
        BEGIN UPDATE counters SET value = value - 1 WHERE name = 'clients/' || OLD.clinic_id; END",
        "ALTER TABLE caseload_assignments ADD COLUMN clinic_id INTEGER NOT NULL DEFAULT 1",
        "CREATE TRIGGER assignments_one_clinic BEFORE INSERT ON caseload_assignments
        WHEN NEW.clinic_id IS NOT (SELECT clinic_id FROM staff WHERE id = NEW.staff_id)
          OR NEW.clinic_id IS NOT (SELECT clinic_id FROM clients WHERE id = NEW.client_id)
        BEGIN SELECT RAISE(ABORT, 'a caseload assignment joins one clinic''s staff and client'); END",
        "ALTER TABLE credentials ADD COLUMN clinic_id INTEGER NOT NULL DEFAULT 1",
        "DROP INDEX credentials_by_username",
        "CREATE UNIQUE INDEX credentials_by_username ON credentials (clinic_id, owner_kind, username)",
        "CREATE TRIGGER credentials_one_clinic BEFORE INSERT ON credentials
        WHEN NEW.clinic_id IS NOT (CASE NEW.owner_kind
            WHEN 'staff' THEN (SELECT clinic_id FROM staff WHERE id = NEW.owner_id)
            ELSE (SELECT clinic_id FROM clients WHERE id = NEW.owner_id) END)
        BEGIN SELECT RAISE(ABORT, 'a credential belongs to its owner''s clinic'); END",
        // A clinic's counters are its own, keyed within it.
        "CREATE TABLE sign_in_throttle_copy AS SELECT * FROM sign_in_throttle",
        "DROP TABLE sign_in_throttle",
        "CREATE TABLE sign_in_throttle (
        clinic_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        window_started_at INTEGER NOT NULL,
        locked_until INTEGER NOT NULL DEFAULT 0,
        refused INTEGER NOT NULL DEFAULT 0,
        account TEXT,
        PRIMARY KEY (clinic_id, key)
    ) WITHOUT ROWID",
        "INSERT INTO sign_in_throttle (clinic_id, key, attempts, window_started_at, locked_until, refused, account)
        SELECT 1, key, attempts, window_started_at, locked_until, refused, account FROM sign_in_throttle_copy",
        "DROP TABLE sign_in_throttle_copy",
        "CREATE INDEX sign_in_throttle_by_account ON sign_in_throttle (clinic_id, account) WHERE account IS NOT NULL",
        "ALTER TABLE one_time_tokens ADD COLUMN clinic_id INTEGER NOT NULL DEFAULT 1",
        // One audit chain per clinic: each entry links to its clinic's previous one.
        "ALTER TABLE audit_log ADD COLUMN clinic_id INTEGER NOT NULL DEFAULT 1",
        "DROP INDEX audit_by_subject",
        "CREATE INDEX audit_by_subject ON audit_log (clinic_id, subject, seq)",
        "CREATE INDEX audit_by_clinic ON audit_log (clinic_id, seq)",
        "ALTER TABLE mail_deliveries ADD COLUMN clinic_id INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE portal_resets ADD COLUMN clinic_id INTEGER NOT NULL DEFAULT 1",
        "DROP INDEX portal_resets_pending",
        "CREATE INDEX portal_resets_pending ON portal_resets (clinic_id, username) WHERE status = 'pending'",
        "ALTER TABLE session_index ADD COLUMN clinic_id INTEGER NOT NULL DEFAULT 1",
        "DROP INDEX session_index_by_start",
        "CREATE INDEX session_index_by_start ON session_index (clinic_id, started_at)",
    ],
    &[
        // The operators: the administrators of clinic 0, whose audit chain is the operator's
        // log (`operator`). Reached only on a host name mapped to it or `operator_host`.
        "INSERT INTO clinics (id, name, created_at) VALUES (0, 'Operators', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
        // One row per billable call, written by the same statement as the audit entry that
        // records the call (a trigger), so that meter and audit never disagree: what is
        // billed is what the audit log shows was done, never a refused call, and a repeat
        // that is answered from its first answer writes no audit entry and no usage. The
        // meters: `sign_in` (a session started), `client_view` (Client Information opened),
        // `client_change` (a client added or corrected), `password_reset` (a portal password
        // emailed and accepted, shown once, or set by an administrator).
        "CREATE TABLE usage_events (
        id INTEGER PRIMARY KEY,
        clinic_id INTEGER NOT NULL,
        meter TEXT NOT NULL,
        audit_seq INTEGER NOT NULL UNIQUE,
        at TEXT NOT NULL
    )",
        "CREATE INDEX usage_by_clinic ON usage_events (clinic_id, at)",
        "CREATE INDEX usage_by_time ON usage_events (at)",
        "CREATE TRIGGER usage_metered AFTER INSERT ON audit_log
        WHEN NEW.clinic_id != 0 AND NEW.action IN ('sign_in', 'client_viewed', 'client_added',
            'client_updated', 'portal_password_reset', 'portal_password_shown', 'portal_password_set')
        BEGIN
            INSERT INTO usage_events (clinic_id, meter, audit_seq, at) VALUES (NEW.clinic_id,
                CASE NEW.action
                    WHEN 'sign_in' THEN 'sign_in'
                    WHEN 'client_viewed' THEN 'client_view'
                    WHEN 'client_added' THEN 'client_change'
                    WHEN 'client_updated' THEN 'client_change'
                    ELSE 'password_reset' END,
                NEW.seq, NEW.at);
        END",
        // A clinic deleted for good takes its audit chain with it: the append-only rule
        // yields only for a clinic listed here, which happens inside the deleting transaction.
        "CREATE TABLE clinic_deletions (clinic_id INTEGER NOT NULL PRIMARY KEY)",
        "DROP TRIGGER audit_log_append_only_delete",
        "CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
        WHEN OLD.clinic_id NOT IN (SELECT clinic_id FROM clinic_deletions)
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    ],
    &[
        // A clinic's own password and session settings (`clinics::NUMBERS`); NULL keeps the
        // deployment's variable.
        "ALTER TABLE clinics ADD COLUMN password_min_length INTEGER",
        "ALTER TABLE clinics ADD COLUMN temp_password_ttl_hours INTEGER",
        "ALTER TABLE clinics ADD COLUMN session_idle_minutes INTEGER",
        "ALTER TABLE clinics ADD COLUMN session_absolute_hours INTEGER",
        // What refers to a client or a staff member is in their clinic (as migration 7's
        // triggers keep assignments and credentials).
        "CREATE TRIGGER portal_resets_one_clinic BEFORE INSERT ON portal_resets
        WHEN NEW.clinic_id IS NOT (SELECT clinic_id FROM clients WHERE id = NEW.client_id)
          OR NEW.clinic_id IS NOT (SELECT clinic_id FROM staff WHERE id = NEW.requested_by)
        BEGIN SELECT RAISE(ABORT, 'a reset belongs to its client''s clinic'); END",
        "CREATE TRIGGER mail_deliveries_one_clinic BEFORE INSERT ON mail_deliveries
        WHEN NEW.client_id IS NOT NULL
          AND NEW.clinic_id IS NOT (SELECT clinic_id FROM clients WHERE id = NEW.client_id)
        BEGIN SELECT RAISE(ABORT, 'an email to a client belongs to the client''s clinic'); END",
        "CREATE TRIGGER one_time_tokens_one_clinic BEFORE INSERT ON one_time_tokens
        WHEN NEW.clinic_id IS NOT (CASE NEW.owner_kind
            WHEN 'staff' THEN (SELECT clinic_id FROM staff WHERE id = NEW.owner_id)
            ELSE (SELECT clinic_id FROM clients WHERE id = NEW.owner_id) END)
        BEGIN SELECT RAISE(ABORT, 'a link belongs to its owner''s clinic'); END",
    ],
];

/// Work that SQL cannot do, on the rows a migration changed.
type Backfill = fn(&dyn Db) -> Result<(), StorageError>;

/// Each backfill, run right after the migration to the version it names, in the same
/// transaction.
const BACKFILLS: &[(i64, Backfill)] = &[(5, fill_name_keys)];

/// Rows one backfill statement writes: a few statements for a large clinic, so that a remote
/// database (one round trip a statement) migrates within a request's time.
const FILL_ROWS: usize = 400;

/// Writes the name keys of every client (migration 5), [`FILL_ROWS`] rows a statement.
fn fill_name_keys(db: &dyn Db) -> Result<(), StorageError> {
    let rows = db.execute(
        "SELECT id, first_name, middle_name, last_name FROM clients",
        &[],
    )?;
    let keyed: Vec<(i64, crate::names::Keys)> = rows
        .iter()
        .map(|r| {
            (
                r.int(0).unwrap_or_default(),
                crate::names::Keys::of(
                    r.text(1).unwrap_or_default(),
                    r.text(2).unwrap_or_default(),
                    r.text(3).unwrap_or_default(),
                ),
            )
        })
        .collect();
    for chunk in keyed.chunks(FILL_ROWS) {
        let mut params = Vec::with_capacity(chunk.len() * 4);
        for (id, keys) in chunk {
            params.extend([
                (*id).into(),
                keys.last.as_str().into(),
                keys.first.as_str().into(),
                keys.words.as_str().into(),
            ]);
        }
        db.execute(
            &format!(
                "UPDATE clients SET last_key = v.column2, first_key = v.column3, name_words = v.column4
                 FROM (VALUES {}) AS v WHERE clients.id = v.column1",
                vec!["(?, ?, ?, ?)"; chunk.len()].join(", ")
            ),
            &params,
        )?;
    }
    Ok(())
}

/// The schema version this code expects.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

fn user_version(db: &dyn Db) -> Result<i64, StorageError> {
    db.execute("PRAGMA user_version", &[])?
        .first()
        .and_then(|r| r.int(0))
        .ok_or_else(|| StorageError::new("PRAGMA user_version gave no answer"))
}

/// One setting Caseport makes on every connection.
pub struct Setting {
    /// The statement that reads it (answers one integer).
    pub read: &'static str,
    /// The value Caseport wants.
    pub wanted: i64,
    /// The statement that sets it.
    pub set: &'static str,
    /// Whether the request must fail when it cannot be set.
    pub required: bool,
}

/// What Caseport sets on every connection, whatever the host (Spin leaves SQLite's defaults;
/// a libSQL server has its own): foreign keys enforced, and on a local file a write-ahead log
/// that syncs at checkpoints (a server refuses journal settings, which is fine).
pub const CONNECTION_SETTINGS: [Setting; 2] = [
    Setting {
        read: "PRAGMA foreign_keys",
        wanted: 1,
        set: "PRAGMA foreign_keys = ON",
        required: true,
    },
    Setting {
        // 1 is NORMAL.
        read: "PRAGMA synchronous",
        wanted: 1,
        set: "PRAGMA synchronous = NORMAL",
        required: false,
    },
];

/// Applies [`CONNECTION_SETTINGS`] to a connection, setting only what is not set already: a
/// host may hand out pooled connections, and setting a flag such as `foreign_keys` expires
/// every statement the connection has prepared (SQLite would parse each one again).
pub fn configure(db: &dyn Db) -> Result<(), StorageError> {
    configure_with(|sql| {
        db.execute(sql, &[])
            .map(|rows| rows.first().and_then(|r| r.int(0)))
    })
}

/// [`configure`] over any connection: `run` runs one statement and answers the integer in
/// its first row, if any.
pub fn configure_with<E>(mut run: impl FnMut(&str) -> Result<Option<i64>, E>) -> Result<(), E> {
    for setting in CONNECTION_SETTINGS {
        match run(setting.read) {
            Ok(Some(value)) if value == setting.wanted => continue,
            // A server that will not even say (libSQL on journal settings) will not set it.
            Err(_) if !setting.required => continue,
            _ => {}
        }
        match run(setting.set) {
            Err(e) if setting.required => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Configures the connection, then brings the schema up to date.
pub fn open(db: &dyn Db) -> Result<(), StorageError> {
    // A pooled connection of an up-to-date database, the usual case, needs nothing done:
    // one statement reads every setting and the schema's version (each statement is a call
    // across the component boundary). Should it fail or find anything to do, the steps
    // below read and do each on its own.
    if ready(db) {
        return Ok(());
    }
    // The first statements of a request: failing here, the database could not be reached
    // (a libSQL server that is down) and nothing was changed.
    configure(db).map_err(StorageError::before_any_write)?;
    migrate(db)
}

/// Reads every one of [`CONNECTION_SETTINGS`] and the schema version in one statement, and
/// answers whether they are all as Caseport wants them.
fn ready(db: &dyn Db) -> bool {
    let Ok(rows) = db.execute(READY_CHECK, &[]) else {
        return false;
    };
    let Some(row) = rows.first() else {
        return false;
    };
    CONNECTION_SETTINGS
        .iter()
        .map(|setting| setting.wanted)
        .chain([VERSION])
        .enumerate()
        .all(|(i, wanted)| row.int(i) == Some(wanted))
}

/// The statement [`ready`] runs: [`CONNECTION_SETTINGS`]' pragmas, then `user_version`, as
/// SQLite's table-valued pragma functions.
const READY_CHECK: &str = "SELECT (SELECT foreign_keys FROM pragma_foreign_keys()), \
     (SELECT synchronous FROM pragma_synchronous()), \
     (SELECT user_version FROM pragma_user_version())";

/// Brings the schema up to [`VERSION`]; cheap when it is there already.
pub fn migrate(db: &dyn Db) -> Result<(), StorageError> {
    let seen = user_version(db)?;
    if seen == VERSION {
        return Ok(());
    }
    if seen == 0 {
        // A new database: readers should not wait for a writer. The mode stays with the file
        // (it cannot change inside the transaction below); a server may refuse it.
        let _ = db.execute("PRAGMA journal_mode = WAL", &[]);
    }
    if seen > VERSION {
        return Err(StorageError::new(format!(
            "the database has schema version {seen}, newer than this code's {VERSION}; deploy the newer components"
        )));
    }
    transaction(db, || {
        let current = user_version(db)?;
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
            for statement in *migration {
                db.execute(statement, &[])?;
            }
            let version = index as i64 + 1;
            for (_, fill) in BACKFILLS.iter().filter(|(v, _)| *v == version) {
                fill(db)?;
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

    /// Tables that hold no one clinic's data: the clinics themselves, the provider's
    /// webhook calls (one provider account serves the deployment), and counters whose names
    /// carry the clinic (`clients/<clinic>`).
    const DEPLOYMENT_TABLES: [&str; 3] = ["clinics", "webhook_events", "counters"];

    #[test]
    fn every_table_that_holds_clinic_data_has_the_clinic() {
        let db = NativeDb::in_memory().unwrap();
        migrate(&db).unwrap();
        let tables = db
            .execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
                &[],
            )
            .unwrap()
            .texts(0);
        assert!(tables.len() > 10, "{tables:?}");
        for table in tables
            .iter()
            .filter(|t| !DEPLOYMENT_TABLES.contains(&t.as_str()))
        {
            let columns = db
                .execute(
                    &format!("SELECT name, \"notnull\" FROM pragma_table_info('{table}')"),
                    &[],
                )
                .unwrap();
            let clinic = columns.iter().find(|r| r.text(0) == Some("clinic_id"));
            assert!(
                clinic.is_some_and(|r| r.int(1) == Some(1)),
                "{table} holds a clinic's data but has no clinic_id NOT NULL"
            );
        }
        // Every index on a clinic table leads with the clinic, or with a key that is unique
        // across clinics (an id, a token's hash).
        let indexes = db
            .execute(
                "SELECT m.name, m.tbl_name, (SELECT name FROM pragma_index_info(m.name) WHERE seqno = 0)
                 FROM sqlite_schema m WHERE m.type = 'index' AND m.sql IS NOT NULL",
                &[],
            )
            .unwrap();
        for r in indexes.iter() {
            let (name, table, first) = (r.text(0).unwrap(), r.text(1).unwrap(), r.text(2));
            if DEPLOYMENT_TABLES.contains(&table) {
                continue;
            }
            // The operator's usage summary reads every clinic's usage by time.
            if name == "usage_by_time" {
                continue;
            }
            assert!(
                matches!(first, Some("clinic_id" | "client_id" | "provider")),
                "index {name} on {table} starts with {first:?}, not the clinic"
            );
        }
    }

    #[test]
    fn nothing_joins_a_row_of_one_clinic_to_a_person_of_another() {
        let db = NativeDb::in_memory().unwrap();
        migrate(&db).unwrap();
        for sql in [
            "INSERT INTO clinics (id, name, created_at) VALUES (2, 'South', 'now')",
            "INSERT INTO staff (id, clinic_id, email, display_name, role, created_at) VALUES (10, 1, 'n@x.example', 'N', 'admin', 'now'), (20, 2, 's@x.example', 'S', 'admin', 'now')",
            "INSERT INTO clients (id, clinic_id, first_name, last_name, dob, created_at) VALUES (11, 1, 'A', 'B', '2000-01-01', 'now'), (21, 2, 'C', 'D', '2000-01-01', 'now')",
        ] {
            db.execute(sql, &[]).unwrap();
        }
        let crossing = [
            "INSERT INTO caseload_assignments (clinic_id, staff_id, client_id, role, date_assigned) VALUES (1, 10, 21, 'primary_case_manager', 'x')",
            "INSERT INTO credentials (clinic_id, owner_kind, owner_id, username, phc, changed_at) VALUES (1, 'client', 21, 'c', 'p', 'x')",
            "INSERT INTO portal_resets (clinic_id, client_id, idempotency_key, requested_by, delivery, status, username, created_at, started_at) VALUES (2, 21, 'k', 10, 'display', 'shown', 'c', 'x', 0)",
            "INSERT INTO mail_deliveries (clinic_id, public_id, client_id, purpose, provider, to_address, status, created_at, updated_at) VALUES (1, 'p', 21, 'reset_link', 'postmark', 'a@b.example', 'sending', 'x', 'x')",
            "INSERT INTO one_time_tokens (clinic_id, token_hash, purpose, owner_kind, owner_id, expires_at) VALUES (2, 'h', 'reset', 'staff', 10, 0)",
        ];
        for sql in crossing {
            let e = db.execute(sql, &[]).unwrap_err();
            assert!(e.detail.contains("clinic"), "{sql}: {e}");
        }
        // The same rows within one clinic are fine.
        db.execute("INSERT INTO caseload_assignments (clinic_id, staff_id, client_id, role, date_assigned) VALUES (2, 20, 21, 'primary_case_manager', 'x')", &[]).unwrap();
        db.execute("INSERT INTO one_time_tokens (clinic_id, token_hash, purpose, owner_kind, owner_id, expires_at) VALUES (1, 'h', 'reset', 'staff', 10, 0)", &[]).unwrap();
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let db = NativeDb::in_memory().unwrap();
        migrate(&db).unwrap();
        assert_eq!(user_version(&db).unwrap(), VERSION);
        migrate(&db).unwrap();
        assert_eq!(user_version(&db).unwrap(), VERSION);
    }

    #[test]
    fn configuring_a_configured_connection_only_reads() {
        let db = NativeDb::in_memory().unwrap();
        let ran = std::cell::RefCell::new(Vec::new());
        let run = |sql: &str| {
            ran.borrow_mut().push(sql.to_string());
            db.execute(sql, &[])
                .map(|rows| rows.first().and_then(|r| r.int(0)))
        };
        configure_with(run).unwrap();
        assert!(
            ran.borrow()
                .iter()
                .any(|s| s == "PRAGMA synchronous = NORMAL"),
            "{ran:?}"
        );
        ran.borrow_mut().clear();
        configure_with(run).unwrap();
        assert_eq!(*ran.borrow(), ["PRAGMA foreign_keys", "PRAGMA synchronous"]);
        assert_eq!(
            db.execute("PRAGMA foreign_keys", &[])
                .unwrap()
                .first()
                .and_then(|r| r.int(0)),
            Some(1)
        );
    }

    #[test]
    fn an_up_to_date_configured_connection_is_checked_in_one_statement() {
        let db = NativeDb::in_memory().unwrap();
        assert!(!ready(&db), "a new database is not ready");
        open(&db).unwrap();
        assert!(ready(&db));
        // The check reads what CONNECTION_SETTINGS names, in its order.
        for (i, setting) in CONNECTION_SETTINGS.iter().enumerate() {
            let pragma = setting.read.trim_start_matches("PRAGMA ");
            assert!(
                READY_CHECK
                    .split("), ")
                    .nth(i)
                    .is_some_and(|part| part.contains(&format!("pragma_{pragma}()"))),
                "{pragma} is not check {i}"
            );
        }
        // Anything not as wanted sends the request the long way, which sets it again.
        db.execute("PRAGMA foreign_keys = OFF", &[]).unwrap();
        assert!(!ready(&db));
        open(&db).unwrap();
        assert!(ready(&db));
        db.execute(&format!("PRAGMA user_version = {}", VERSION - 1), &[])
            .unwrap();
        assert!(!ready(&db));
    }

    #[test]
    fn a_required_setting_that_fails_fails_the_request() {
        let refused = configure_with(|sql| {
            if sql.ends_with("= ON") {
                Err("refused")
            } else {
                Ok(Some(0))
            }
        });
        assert_eq!(refused, Err("refused"));
        let mut ran = Vec::new();
        // An optional one the server will not read is not set either.
        configure_with(|sql: &str| {
            ran.push(sql.to_string());
            if sql.contains("synchronous") {
                Err("no")
            } else {
                Ok(Some(1))
            }
        })
        .unwrap();
        assert_eq!(ran, ["PRAGMA foreign_keys", "PRAGMA synchronous"]);
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
    fn the_deliveries_table_is_rebuilt_with_its_rows_and_references() {
        let db = NativeDb::in_memory().unwrap();
        transaction(&db, || {
            for migration in &MIGRATIONS[..3] {
                for statement in *migration {
                    db.execute(statement, &[])?;
                }
            }
            db.execute("PRAGMA user_version = 3", &[])
        })
        .unwrap();
        db.execute("INSERT INTO staff (id, email, display_name, role, created_at) VALUES (1, 'a@b.c', 'A', 'admin', 't')", &[]).unwrap();
        db.execute("INSERT INTO clients (id, first_name, last_name, dob, created_at) VALUES (1, 'J', 'D', '2013-02-19', 't')", &[]).unwrap();
        db.execute("INSERT INTO mail_deliveries (id, public_id, client_id, purpose, provider, to_address, status, created_at, updated_at) VALUES (7, 'p', 1, 'reset_link', 'postmark', 'j@d.e', 'accepted', 't', 't')", &[]).unwrap();
        db.execute("INSERT INTO portal_resets (client_id, idempotency_key, requested_by, delivery, status, username, mail_delivery_id, created_at, started_at) VALUES (1, 'k', 1, 'email', 'sent', 'j@d.e', 7, 't', 0)", &[]).unwrap();
        migrate(&db).unwrap();
        let row = db
            .execute("SELECT d.public_id FROM portal_resets r JOIN mail_deliveries d ON d.id = r.mail_delivery_id", &[])
            .unwrap();
        assert_eq!(
            row.first()
                .and_then(|r| r.text(0).map(str::to_string))
                .as_deref(),
            Some("p")
        );
        db.execute("INSERT INTO mail_deliveries (public_id, purpose, provider, to_address, status, created_at, updated_at) VALUES ('q', 'email_changed', 'postmark', 'x@y.z', 'sending', 't', 't')", &[]).unwrap();
        assert!(db.execute("INSERT INTO portal_resets (client_id, idempotency_key, requested_by, delivery, status, username, mail_delivery_id, created_at, started_at) VALUES (1, 'k2', 1, 'email', 'sent', 'j@d.e', 999, 't', 0)", &[]).is_err(), "references are still checked");
    }

    #[test]
    fn the_clients_already_there_get_their_name_keys() {
        let db = NativeDb::in_memory().unwrap();
        transaction(&db, || {
            for migration in &MIGRATIONS[..4] {
                for statement in *migration {
                    db.execute(statement, &[])?;
                }
            }
            db.execute("PRAGMA user_version = 4", &[])
        })
        .unwrap();
        db.execute("INSERT INTO clients (id, first_name, middle_name, last_name, dob, created_at) VALUES (1, 'Zoë', 'Anne', 'Émoji-Test', '2013-02-19', 't')", &[]).unwrap();
        // More than one backfill statement's worth.
        for id in 2..=(2 * FILL_ROWS as i64 + 3) {
            db.execute(
                "INSERT INTO clients (id, first_name, last_name, dob, created_at) VALUES (?, ?, 'Doe', '2013-02-19', 't')",
                &[id.into(), format!("Kid{id}").into()],
            )
            .unwrap();
        }
        migrate(&db).unwrap();
        let unkeyed = db
            .execute(
                "SELECT count(*) FROM clients WHERE last_key = '' OR first_key != lower(first_name)",
                &[],
            )
            .unwrap();
        assert_eq!(
            unkeyed.first().and_then(|r| r.int(0)),
            Some(1),
            "only Zoë's first key differs from lower()"
        );
        let rows = db
            .execute(
                "SELECT last_key, first_key, name_words FROM clients WHERE id = 1",
                &[],
            )
            .unwrap();
        let r = rows.first().unwrap();
        assert_eq!(
            (r.text(0), r.text(1), r.text(2)),
            (
                Some("emoji test"),
                Some("zoe"),
                Some(" zoe anne emoji test ")
            )
        );
    }

    #[test]
    fn a_newer_database_is_refused() {
        let db = NativeDb::in_memory().unwrap();
        db.execute("PRAGMA user_version = 999", &[]).unwrap();
        assert!(
            migrate(&db)
                .unwrap_err()
                .detail
                .contains("newer than this code")
        );
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
