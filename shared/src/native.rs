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
