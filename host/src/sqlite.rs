//! `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.0.0`: the `default` database lives in
//! `<state-dir>/sqlite_db.db`, as in Spin; a runtime config may put any database in another
//! file or on a libSQL server (Spin's `spin` and `libsql` types). Both interface versions
//! share one implementation.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, ToSql};
use tokio::sync::OnceCell;
use wasmtime::component::Resource;

use crate::bindings::{fermyon::spin::sqlite as v2, spin::sqlite::sqlite as v3};
use crate::runtime_config::{RuntimeConfig, SqliteBackend};
use crate::spin_ctx::SpinView;
use crate::sqlite_pool::Pool;

/// How long one statement may wait for a libSQL server.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where one database lives.
enum Database {
    File(Arc<Pool>),
    LibSql(Box<Remote>),
}

/// A libSQL server.
struct Remote {
    url: String,
    token: String,
    /// Built on first use (building is async); each guest connection is one server stream.
    client: OnceCell<libsql::Database>,
}

/// The application's SQLite databases, by label.
pub struct Databases {
    databases: HashMap<String, Database>,
}

impl Databases {
    /// Opens `default` in the state directory unless the runtime config puts it elsewhere,
    /// and every database the runtime config defines.
    pub fn open(state_dir: &Path, config: &RuntimeConfig) -> Result<Self> {
        let mut databases = HashMap::new();
        let mut backends: Vec<(String, SqliteBackend)> = config
            .sqlite_databases
            .iter()
            .map(|(l, b)| (l.clone(), b.clone()))
            .collect();
        if !config.sqlite_databases.contains_key("default") {
            backends.push((
                "default".into(),
                SqliteBackend::Spin {
                    path: Some(state_dir.join("sqlite_db.db")),
                    allow_attach_file: false,
                },
            ));
        }
        for (label, backend) in backends {
            let database = match backend {
                // As Spin's: no journal mode or foreign-key setting of the runtime's own; the
                // application sets what it relies on.
                SqliteBackend::Spin {
                    path: Some(path),
                    allow_attach_file,
                } => Database::File(Arc::new(Pool::open(&path, false, !allow_attach_file)?)),
                SqliteBackend::Spin { path: None, .. } => bail!(
                    "sqlite_database.{label}: a database with no path is kept in memory by Spin, which this runtime does not do; give it a path"
                ),
                SqliteBackend::LibSql { url, token } => Database::LibSql(Box::new(Remote {
                    url,
                    token,
                    client: OnceCell::new(),
                })),
            };
            databases.insert(label, database);
        }
        Ok(Self { databases })
    }

    /// Whether a database with this label exists.
    pub fn has(&self, label: &str) -> bool {
        self.databases.contains_key(label)
    }

    /// Where a database keeps its data, as Spin words it at start.
    pub fn summary(&self, label: &str) -> Option<String> {
        Some(match self.databases.get(label)? {
            Database::File(pool) => format!("\"{}\"", pool.path().display()),
            Database::LibSql(remote) => format!("libSQL at {}", remote.url),
        })
    }
}

/// An open connection, as the guest holds it, so that a transaction spans several `execute`
/// calls: a pooled local connection, or a libSQL connection (one server stream).
pub struct ConnectionHandle {
    conn: Conn,
    last_insert_rowid: i64,
    changes: u64,
}

enum Conn {
    /// Taken out while a statement runs (it may wait for a busy database).
    File {
        pool: Arc<Pool>,
        conn: Option<Connection>,
    },
    LibSql(libsql::Connection),
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
    async fn open_database(
        &mut self,
        name: &str,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, Failure>> {
        if !self.grants.sqlite_databases.iter().any(|d| d == name) {
            return Ok(Err(Failure::AccessDenied));
        }
        let conn = match self.stores.sqlite.databases.get(name) {
            None => return Ok(Err(Failure::NoSuchDatabase)),
            Some(Database::File(pool)) => match pool.take() {
                Ok(c) => Conn::File {
                    pool: pool.clone(),
                    conn: Some(c),
                },
                Err(e) => return Ok(Err(Failure::Io(format!("{e:#}")))),
            },
            Some(Database::LibSql(remote)) => {
                let Remote { url, token, client } = remote.as_ref();
                let connected = async {
                    client
                        .get_or_try_init(|| {
                            libsql::Builder::new_remote(url.clone(), token.clone()).build()
                        })
                        .await?
                        .connect()
                }
                .await;
                match connected {
                    Ok(c) => Conn::LibSql(c),
                    Err(e) => return Ok(Err(Failure::Io(format!("libSQL at {url}: {e}")))),
                }
            }
        };
        Ok(Ok(self.table.push(ConnectionHandle {
            conn,
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
        let handle = self.table.get_mut(handle)?;
        let answer = match &mut handle.conn {
            Conn::File { conn: slot, .. } => {
                // The connection leaves its handle while the statement runs (it may wait for
                // a busy database), and goes back after.
                let Some(mut conn) = slot.take() else {
                    return Ok(Err(Failure::InvalidConnection));
                };
                let answer = crate::sqlite_pool::retrying(|| {
                    let c = &mut conn;
                    run(c, statement, &params)
                })
                .await;
                handle.last_insert_rowid = conn.last_insert_rowid();
                handle.changes = conn.changes();
                *slot = Some(conn);
                answer.map_err(|e| match e.sqlite_error_code() {
                    Some(rusqlite::ErrorCode::DiskFull) => Failure::DatabaseFull,
                    _ => Failure::Io(e.to_string()),
                })
            }
            Conn::LibSql(conn) => {
                // A server that does not answer costs the request seconds, not its whole time.
                let answer =
                    tokio::time::timeout(REMOTE_TIMEOUT, run_remote(conn, statement, params))
                        .await
                        .unwrap_or_else(|_| {
                            Err(Failure::Io(format!(
                                "the libSQL server did not answer within {} s",
                                REMOTE_TIMEOUT.as_secs()
                            )))
                        });
                handle.last_insert_rowid = conn.last_insert_rowid();
                handle.changes = conn.changes();
                answer
            }
        };
        Ok(answer)
    }

    async fn close_database(&mut self, handle: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        let handle = self.table.delete(handle)?;
        match handle.conn {
            Conn::File {
                pool,
                conn: Some(conn),
            } => pool.put(conn),
            Conn::File { conn: None, .. } => {}
            // A transaction the guest left open ends with it, as a pooled connection's does.
            Conn::LibSql(conn) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute("ROLLBACK", ()).await;
                }
            }
        }
        Ok(())
    }
}

/// Runs one statement on a libSQL server.
async fn run_remote(
    conn: &libsql::Connection,
    statement: &str,
    params: Vec<Cell>,
) -> Result<Answer, Failure> {
    let params: Vec<libsql::Value> = params
        .into_iter()
        .map(|c| match c {
            Cell::Integer(i) => libsql::Value::Integer(i),
            Cell::Real(f) => libsql::Value::Real(f),
            Cell::Text(t) => libsql::Value::Text(t),
            Cell::Blob(b) => libsql::Value::Blob(b),
            Cell::Null => libsql::Value::Null,
        })
        .collect();
    let io = |e: libsql::Error| Failure::Io(e.to_string());
    let mut rows = conn.query(statement, params).await.map_err(io)?;
    let width = usize::try_from(rows.column_count()).unwrap_or(0);
    let columns = (0..width)
        .map(|i| {
            rows.column_name(i32::try_from(i).unwrap_or(0))
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.map_err(io)? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(
                match row.get_value(i32::try_from(i).unwrap_or(0)).map_err(io)? {
                    libsql::Value::Null => Cell::Null,
                    libsql::Value::Integer(v) => Cell::Integer(v),
                    libsql::Value::Real(v) => Cell::Real(v),
                    libsql::Value::Text(t) => Cell::Text(t),
                    libsql::Value::Blob(b) => Cell::Blob(b),
                },
            );
        }
        out.push(values);
    }
    Ok(Answer { columns, rows: out })
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
        Ok(self.open_database(&database).await?.map_err(Into::into))
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
        self.close_database(conn).await
    }
}

impl v3::HostConnection for SpinView<'_> {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, v3::Error>> {
        Ok(self.open_database(&database).await?.map_err(Into::into))
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
        self.close_database(conn).await
    }
}
