//! A small pool of connections to one SQLite file, shared by all requests.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::Connection;

/// Connections to one database file; a request takes one and gives it back when done.
pub struct Pool {
    path: PathBuf,
    /// Whether this runtime sets the write-ahead log itself (its own key-value files); an
    /// application's database is left as the application sets it, as Spin does.
    wal: bool,
    /// Whether `ATTACH` of another file is refused (Spin's default for a database).
    deny_attach: bool,
    idle: Mutex<Vec<Connection>>,
}

/// How many idle connections are kept; more may be open while requests are in flight.
const MAX_IDLE: usize = 16;

/// How many prepared statements each connection keeps.
const STATEMENT_CACHE: usize = 128;

impl Pool {
    /// The file the pool opens.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Opens the file (creating it and its directory) and checks that it is usable.
    pub fn open(path: &Path, wal: bool, deny_attach: bool) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create state directory {}", dir.display()))?;
        }
        let pool = Self {
            path: path.to_path_buf(),
            wal,
            deny_attach,
            idle: Mutex::new(Vec::new()),
        };
        let conn = pool.connect()?;
        pool.put(conn);
        Ok(pool)
    }

    fn connect(&self) -> Result<Connection> {
        let conn = Connection::open(&self.path)
            .with_context(|| format!("cannot open SQLite database {}", self.path.display()))?;
        // No busy handler: it would sleep in the worker thread while the writer it waits for
        // may need that thread. `retrying` waits asynchronously instead.
        conn.busy_timeout(Duration::ZERO)?;
        // Room for every statement the application's requests run, so that none is parsed
        // again on a later request (the default of 16 is fewer than one sign-in runs).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if self.deny_attach {
            // As Spin: a database may not attach another file (only a temporary or in-memory
            // one); the statement fails with "not authorized".
            conn.authorizer(Some(|ctx: rusqlite::hooks::AuthContext<'_>| {
                match ctx.action {
                    rusqlite::hooks::AuthAction::Attach { filename }
                        if !filename.is_empty() && filename != ":memory:" =>
                    {
                        rusqlite::hooks::Authorization::Deny
                    }
                    _ => rusqlite::hooks::Authorization::Allow,
                }
            }));
        }
        if self.wal {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        Ok(conn)
    }

    /// Takes an idle connection or opens a new one.
    pub fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        match idle {
            Some(c) => Ok(c),
            None => self.connect(),
        }
    }

    /// Returns a connection; an open transaction the guest left behind is rolled back.
    pub fn put(&self, conn: Connection) {
        if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(conn);
        }
    }

    /// Runs `f` on a pooled connection at start-up, before any request (nothing else writes).
    pub fn with_at_start<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let conn = self.take()?;
        let out = f(&conn);
        self.put(conn);
        Ok(out?)
    }

    /// Runs `f` on a pooled connection (again while the database is busy).
    pub async fn with<T>(
        &self,
        mut f: impl FnMut(&Connection) -> rusqlite::Result<T> + Send,
    ) -> Result<T> {
        let mut conn = self.take()?;
        // The closure borrows the connection mutably: `&mut Connection` may cross the awaits
        // between tries, `&Connection` may not (a connection is not `Sync`).
        let out = retrying(|| {
            let c = &mut conn;
            f(c)
        })
        .await;
        self.put(conn);
        Ok(out?)
    }
}

/// How long a statement waits for another connection's write lock, as a busy timeout would.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// Runs `f` until the database is not busy, waiting between tries without holding the thread
/// (1 ms, doubling to 50 ms, for [`BUSY_WAIT`] at most). A statement refused as busy did
/// nothing, so trying it again is safe.
pub async fn retrying<T>(mut f: impl FnMut() -> rusqlite::Result<T> + Send) -> rusqlite::Result<T> {
    let deadline = tokio::time::Instant::now() + BUSY_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        match f() {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && tokio::time::Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}
