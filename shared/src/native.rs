//! The storage ports on real SQLite through rusqlite: what the rules' tests and benchmarks
//! run on. Not compiled into the components.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, ToSql};

use crate::ports::{Db, Kv, Rows, StorageError, Value};

fn storage(e: rusqlite::Error) -> StorageError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => StorageError::full(e.to_string()),
        _ => StorageError::new(e.to_string()),
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(SqlValue::Null),
            Value::Integer(i) => ToSqlOutput::Owned(SqlValue::Integer(*i)),
            Value::Real(f) => ToSqlOutput::Owned(SqlValue::Real(*f)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// A SQLite connection (a file, or in memory).
pub struct NativeDb {
    conn: Mutex<Connection>,
}

impl NativeDb {
    /// Opens a database file.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let conn = Connection::open(path).map_err(storage)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(storage)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// A fresh in-memory database.
    pub fn in_memory() -> Result<Self, StorageError> {
        Ok(Self {
            conn: Mutex::new(Connection::open_in_memory().map_err(storage)?),
        })
    }
}

impl Db for NativeDb {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, StorageError> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| StorageError::new("connection poisoned"))?;
        let mut stmt = conn.prepare_cached(sql).map_err(storage)?;
        let width = stmt.column_count();
        let mut cursor = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(storage)?;
        let mut rows = Vec::new();
        while let Some(row) = cursor.next().map_err(storage)? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(match row.get_ref(i).map_err(storage)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Integer(v),
                    ValueRef::Real(v) => Value::Real(v),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            rows.push(values);
        }
        Ok(Rows { rows })
    }
}

/// A key-value store in SQLite, in Spin's table layout.
pub struct NativeKv {
    db: NativeDb,
}

impl NativeKv {
    /// A fresh in-memory store.
    pub fn in_memory() -> Result<Self, StorageError> {
        let db = NativeDb::in_memory()?;
        db.execute(
            "CREATE TABLE spin_key_value (store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (store, key))",
            &[],
        )?;
        Ok(Self { db })
    }

    /// Every key, for tests that scan what was stored.
    pub fn keys(&self) -> Result<Vec<String>, StorageError> {
        Ok(self
            .db
            .execute("SELECT key FROM spin_key_value ORDER BY key", &[])?
            .texts(0))
    }
}

impl Kv for NativeKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let rows = self.db.execute(
            "SELECT value FROM spin_key_value WHERE store = 'default' AND key = ?",
            &[key.into()],
        )?;
        Ok(rows
            .rows
            .into_iter()
            .next()
            .and_then(|r| match r.into_iter().next() {
                Some(Value::Blob(b)) => Some(b),
                Some(Value::Text(t)) => Some(t.into_bytes()),
                _ => None,
            }))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.db.execute(
            "INSERT INTO spin_key_value (store, key, value) VALUES ('default', ?, ?) ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
            &[key.into(), Value::Blob(value.to_vec())],
        )?;
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.db.execute(
            "DELETE FROM spin_key_value WHERE store = 'default' AND key = ?",
            &[key.into()],
        )?;
        Ok(())
    }
}

/// A `Db` that runs each statement on `db` and remembers it, so that SQLite can be asked
/// afterwards how it planned what a use case ran (the caseload's plan test, `bench-scale`).
pub struct PlanRecorder<'a> {
    db: &'a dyn Db,
    seen: std::cell::RefCell<Vec<(String, Vec<Value>)>>,
}

impl<'a> PlanRecorder<'a> {
    pub fn new(db: &'a dyn Db) -> Self {
        Self {
            db,
            seen: Default::default(),
        }
    }

    /// Forgets the statements run so far.
    pub fn forget(&self) {
        self.seen.borrow_mut().clear();
    }

    /// The lines of `EXPLAIN QUERY PLAN` for each statement run since the last call that
    /// `keep` selects, in order; forgets them all.
    pub fn take_plans(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<String>, StorageError> {
        let seen = std::mem::take(&mut *self.seen.borrow_mut());
        let mut lines = Vec::new();
        for (sql, params) in seen.iter().filter(|(sql, _)| keep(sql)) {
            let plan = self
                .db
                .execute(&format!("EXPLAIN QUERY PLAN {sql}"), params)?;
            lines.extend(
                plan.iter()
                    .map(|r| r.text(3).unwrap_or_default().to_string()),
            );
        }
        Ok(lines)
    }
}

impl Db for PlanRecorder<'_> {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, StorageError> {
        self.seen
            .borrow_mut()
            .push((sql.to_string(), params.to_vec()));
        self.db.execute(sql, params)
    }
}

#[cfg(test)]
mod tests {
    use super::NativeDb;
    use crate::api_error::{ApiError, Code};
    use crate::ports::{
        Contention, Db, Rows, StorageError, Value, autocommit, transaction, transaction_within,
    };
    use std::cell::Cell;

    /// `ports::transaction` on real SQLite: a database whose first `COMMIT` fails after rolling back, as a libSQL server does when
    /// it timed the transaction out.
    struct FirstCommitFails {
        db: NativeDb,
        failed: Cell<bool>,
    }

    impl Db for FirstCommitFails {
        fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, StorageError> {
            if sql == "COMMIT" && !self.failed.replace(true) {
                self.db.execute("ROLLBACK", &[])?;
                return Err(StorageError::new("the transaction timed out"));
            }
            self.db.execute(sql, params)
        }
    }

    #[test]
    fn a_failed_commit_is_rolled_back_and_tried_once_more() {
        let db = FirstCommitFails {
            db: NativeDb::in_memory().unwrap(),
            failed: Cell::new(false),
        };
        db.execute("CREATE TABLE t (n INTEGER)", &[]).unwrap();
        let mut runs = 0;
        transaction(&db, || {
            runs += 1;
            db.execute("INSERT INTO t VALUES (1)", &[])
        })
        .unwrap();
        assert_eq!(runs, 2);
        let rows = db.execute("SELECT count(*) FROM t", &[]).unwrap();
        assert_eq!(rows.first().and_then(|r| r.int(0)), Some(1), "written once");
    }

    /// A database where another writer holds the lock for the first `busy` inserts.
    struct Locked {
        db: NativeDb,
        busy: Cell<u32>,
    }

    impl Db for Locked {
        fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, StorageError> {
            if sql.starts_with("INSERT") && self.busy.get() > 0 {
                self.busy.set(self.busy.get() - 1);
                return Err(StorageError::contended("SQLITE_BUSY"));
            }
            self.db.execute(sql, params)
        }
    }

    fn locked(busy: u32) -> Locked {
        let db = Locked {
            db: NativeDb::in_memory().unwrap(),
            busy: Cell::new(busy),
        };
        db.db.execute("CREATE TABLE t (n INTEGER)", &[]).unwrap();
        db
    }

    fn count(db: &Locked) -> Option<i64> {
        let rows = db.db.execute("SELECT count(*) FROM t", &[]).unwrap();
        rows.first().and_then(|r| r.int(0))
    }

    #[test]
    fn a_transaction_that_met_another_writer_runs_again_as_a_whole() {
        let db = locked(3);
        let mut runs = 0;
        transaction(&db, || -> Result<(), ApiError> {
            runs += 1;
            db.execute("UPDATE t SET n = n + 1", &[])?;
            db.execute("INSERT INTO t VALUES (1)", &[])?;
            Ok(())
        })
        .unwrap();
        assert_eq!(runs, 4);
        assert_eq!(count(&db), Some(1), "the rolled-back runs left nothing");
    }

    #[test]
    fn a_writer_that_never_lets_go_answers_busy() {
        let db = locked(u32::MAX);
        let mut runs = 0;
        let started = std::time::Instant::now();
        let budget = std::time::Duration::from_millis(300);
        let e = transaction_within(&db, budget, || -> Result<(), ApiError> {
            runs += 1;
            db.execute("INSERT INTO t VALUES (1)", &[])?;
            Ok(())
        })
        .unwrap_err();
        assert!(runs > 2, "{runs}");
        assert!(started.elapsed() <= budget + std::time::Duration::from_millis(50));
        assert_eq!((e.code, e.retry_after), (Code::Busy, Some(1)));
        assert_eq!(count(&db), Some(0));
    }

    #[test]
    fn a_statement_outside_a_transaction_runs_again_but_another_failure_does_not() {
        let db = locked(2);
        autocommit(|| db.execute("INSERT INTO t VALUES (1)", &[])).unwrap();
        assert_eq!(count(&db), Some(1));
        let mut runs = 0;
        let e = autocommit(|| {
            runs += 1;
            db.execute("INSERT INTO nowhere VALUES (1)", &[])
        })
        .unwrap_err();
        assert_eq!((runs, e.is_contended()), (1, false));
    }
}
