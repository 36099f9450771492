//! `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.0.0`: the `default` database lives in
//! `<state-dir>/sqlite_db.db`, as in Spin. Both versions share one implementation.

use std::path::Path;

use anyhow::Result;
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, ToSql};
use wasmtime::component::Resource;

use crate::bindings::{fermyon::spin::sqlite as v2, spin::sqlite::sqlite as v3};
use crate::spin_ctx::SpinView;
use crate::sqlite_pool::Pool;

/// The application's SQLite databases (only `default`).
pub struct Databases {
    pool: Pool,
}

impl Databases {
    /// Opens (creating if needed) the default database under `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self> {
        Ok(Self {
            pool: Pool::open(&state_dir.join("sqlite_db.db"))?,
        })
    }
}

/// An open connection, as the guest holds it: one pooled connection for its lifetime, so a
/// transaction spans several `execute` calls.
pub struct ConnectionHandle {
    conn: Option<Connection>,
    last_insert_rowid: i64,
    changes: u64,
}

/// A value crossing the interface, before it becomes one version's `value`.
enum Cell {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

impl ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Cell::Integer(i) => ToSqlOutput::Owned(SqlValue::Integer(*i)),
            Cell::Real(f) => ToSqlOutput::Owned(SqlValue::Real(*f)),
            Cell::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Cell::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Cell::Null => ToSqlOutput::Owned(SqlValue::Null),
        })
    }
}

enum Failure {
    NoSuchDatabase,
    AccessDenied,
    InvalidConnection,
    DatabaseFull,
    Io(String),
}

struct Answer {
    columns: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

impl SpinView<'_> {
    fn open_database(
        &mut self,
        name: &str,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, Failure>> {
        if !self.grants.sqlite_databases.iter().any(|d| d == name) {
            return Ok(Err(Failure::AccessDenied));
        }
        if name != "default" {
            return Ok(Err(Failure::NoSuchDatabase));
        }
        let conn = match self.stores.sqlite.pool.take() {
            Ok(c) => c,
            Err(e) => return Ok(Err(Failure::Io(format!("{e:#}")))),
        };
        Ok(Ok(self.table.push(ConnectionHandle {
            conn: Some(conn),
            last_insert_rowid: 0,
            changes: 0,
        })?))
    }

    async fn execute_statement(
        &mut self,
        handle: &Resource<ConnectionHandle>,
        statement: &str,
        params: Vec<Cell>,
    ) -> wasmtime::Result<Result<Answer, Failure>> {
        // The connection leaves its handle while the statement runs (it may wait for a busy
        // database), and goes back after.
        let Some(mut conn) = self.table.get_mut(handle)?.conn.take() else {
            return Ok(Err(Failure::InvalidConnection));
        };
        let answer = crate::sqlite_pool::retrying(|| {
            let c = &mut conn;
            run(c, statement, &params)
        })
        .await;
        let handle = self.table.get_mut(handle)?;
        handle.last_insert_rowid = conn.last_insert_rowid();
        handle.changes = conn.changes();
        handle.conn = Some(conn);
        Ok(answer.map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => Failure::DatabaseFull,
            _ => Failure::Io(e.to_string()),
        }))
    }

    fn close_database(&mut self, handle: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        let mut handle = self.table.delete(handle)?;
        if let Some(conn) = handle.conn.take() {
            self.stores.sqlite.pool.put(conn);
        }
        Ok(())
    }
}

fn run(conn: &Connection, statement: &str, params: &[Cell]) -> rusqlite::Result<Answer> {
    let mut stmt = conn.prepare_cached(statement)?;
    let columns: Vec<String> = stmt
        .column_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    let width = columns.len();
    let mut rows = Vec::new();
    let mut cursor = stmt.query(rusqlite::params_from_iter(params))?;
    while let Some(row) = cursor.next()? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Integer(v),
                ValueRef::Real(v) => Cell::Real(v),
                ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
            });
        }
        rows.push(values);
    }
    Ok(Answer { columns, rows })
}

/// Implements one version of the interface over the shared core: the two differ only in
/// their generated types and in v3's `last-insert-rowid` and `changes`.
macro_rules! sqlite_version {
    ($m:ident) => {
        impl From<$m::Value> for Cell {
            fn from(v: $m::Value) -> Self {
                match v {
                    $m::Value::Integer(i) => Cell::Integer(i),
                    $m::Value::Real(f) => Cell::Real(f),
                    $m::Value::Text(t) => Cell::Text(t),
                    $m::Value::Blob(b) => Cell::Blob(b),
                    $m::Value::Null => Cell::Null,
                }
            }
        }

        impl From<Cell> for $m::Value {
            fn from(c: Cell) -> Self {
                match c {
                    Cell::Integer(i) => $m::Value::Integer(i),
                    Cell::Real(f) => $m::Value::Real(f),
                    Cell::Text(t) => $m::Value::Text(t),
                    Cell::Blob(b) => $m::Value::Blob(b),
                    Cell::Null => $m::Value::Null,
                }
            }
        }

        impl From<Failure> for $m::Error {
            fn from(f: Failure) -> Self {
                match f {
                    Failure::NoSuchDatabase => $m::Error::NoSuchDatabase,
                    Failure::AccessDenied => $m::Error::AccessDenied,
                    Failure::InvalidConnection => $m::Error::InvalidConnection,
                    Failure::DatabaseFull => $m::Error::DatabaseFull,
                    Failure::Io(m) => $m::Error::Io(m),
                }
            }
        }

        impl From<Answer> for $m::QueryResult {
            fn from(a: Answer) -> Self {
                $m::QueryResult {
                    columns: a.columns,
                    rows: a
                        .rows
                        .into_iter()
                        .map(|r| $m::RowResult {
                            values: r.into_iter().map(Into::into).collect(),
                        })
                        .collect(),
                }
            }
        }

        impl $m::Host for SpinView<'_> {}
    };
}

sqlite_version!(v2);
sqlite_version!(v3);

impl v2::HostConnection for SpinView<'_> {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, v2::Error>> {
        Ok(self.open_database(&database)?.map_err(Into::into))
    }

    async fn execute(
        &mut self,
        conn: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> wasmtime::Result<Result<v2::QueryResult, v2::Error>> {
        let params = parameters.into_iter().map(Into::into).collect();
        Ok(self
            .execute_statement(&conn, &statement, params)
            .await?
            .map(Into::into)
            .map_err(Into::into))
    }

    async fn drop(&mut self, conn: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.close_database(conn)
    }
}

impl v3::HostConnection for SpinView<'_> {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, v3::Error>> {
        Ok(self.open_database(&database)?.map_err(Into::into))
    }

    async fn execute(
        &mut self,
        conn: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> wasmtime::Result<Result<v3::QueryResult, v3::Error>> {
        let params = parameters.into_iter().map(Into::into).collect();
        Ok(self
            .execute_statement(&conn, &statement, params)
            .await?
            .map(Into::into)
            .map_err(Into::into))
    }

    async fn last_insert_rowid(
        &mut self,
        conn: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<i64> {
        Ok(self.table.get(&conn)?.last_insert_rowid)
    }

    async fn changes(&mut self, conn: Resource<ConnectionHandle>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&conn)?.changes)
    }

    async fn drop(&mut self, conn: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.close_database(conn)
    }
}
