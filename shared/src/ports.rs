//! The small traits the rules run over: a SQL database, a key-value store, a clock and a
//! random source. One implementation on Spin lives in `functions/edge`; one on real SQLite
//! (feature `native`) lives in `native.rs`, for tests and benchmarks.

use std::fmt;

/// A SQL value, as both Spin SQLite and rusqlite carry it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Integer(i64::from(v))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A query's answer: rows of values, in the statement's column order.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    /// The first row, if any.
    pub fn first(&self) -> Option<Row<'_>> {
        self.rows.first().map(|r| Row(r))
    }

    /// The text values of column `i`, row by row (NULLs and non-text skipped).
    pub fn texts(&self, i: usize) -> Vec<String> {
        self.iter()
            .filter_map(|r| r.text(i).map(str::to_string))
            .collect()
    }

    /// Every row.
    pub fn iter(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|r| Row(r))
    }
}

/// One row, read by column position.
#[derive(Clone, Copy)]
pub struct Row<'a>(&'a [Value]);

impl Row<'_> {
    /// An integer column (NULL reads as `None`).
    pub fn int(&self, i: usize) -> Option<i64> {
        match self.0.get(i) {
            Some(Value::Integer(v)) => Some(*v),
            _ => None,
        }
    }

    /// A text column (NULL reads as `None`).
    pub fn text(&self, i: usize) -> Option<&str> {
        match self.0.get(i) {
            Some(Value::Text(v)) => Some(v),
            _ => None,
        }
    }

    /// A text column that must be present.
    pub fn string(&self, i: usize) -> Result<String, StorageError> {
        self.text(i)
            .map(str::to_string)
            .ok_or_else(|| StorageError::new(format!("column {i} is not text")))
    }
}

/// A storage failure; its text is for the operator's log, never for the client.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageError {
    pub kind: StorageFailure,
    pub detail: String,
}

/// What a storage failure means for the request that met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFailure {
    /// Anything else: the request failed part way, inside a transaction or before writing.
    Failed,
    /// The storage has no room left: nothing of the failed write was kept.
    Full,
    /// The storage could not be reached before the request wrote anything (a database or
    /// key-value server that is down or unreachable): nothing was changed.
    Unreachable,
    /// Another writer held the database, so the statement did nothing: SQLite's "database
    /// is locked", or a libSQL server interrupting a transaction that waited for its lock
    /// (which it then rolled back). Running it again may succeed.
    Contended,
}

impl StorageError {
    /// A failure, described for the operator.
    pub fn new(detail: impl Into<String>) -> Self {
        Self {
            kind: StorageFailure::Failed,
            detail: detail.into(),
        }
    }

    /// The storage is full.
    pub fn full(detail: impl Into<String>) -> Self {
        Self {
            kind: StorageFailure::Full,
            detail: detail.into(),
        }
    }

    /// Another writer held the database.
    pub fn contended(detail: impl Into<String>) -> Self {
        Self {
            kind: StorageFailure::Contended,
            detail: detail.into(),
        }
    }

    /// The same failure, met before the request wrote anything: unless the storage is full
    /// or busy, it could not be reached.
    pub fn before_any_write(self) -> Self {
        match self.kind {
            StorageFailure::Failed => Self {
                kind: StorageFailure::Unreachable,
                ..self
            },
            _ => self,
        }
    }
}

/// An error that can say another writer held the database, so that the work may run again.
pub trait Contention {
    fn is_contended(&self) -> bool;
}

impl Contention for StorageError {
    fn is_contended(&self) -> bool {
        self.kind == StorageFailure::Contended
    }
}

/// How long work that met another writer keeps trying before the request gives up with
/// `503 busy`: as long as a local SQLite file waits for its lock under `caseport up`.
pub const CONTENDED_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Pauses between runs of work that met another writer, until a time budget is spent.
pub struct Patience {
    since: std::time::Instant,
    budget: std::time::Duration,
    pause_ms: u64,
}

impl Patience {
    pub fn new(budget: std::time::Duration) -> Self {
        Self {
            since: std::time::Instant::now(),
            budget,
            pause_ms: 5,
        }
    }

    /// Waits before the next run and answers true, or answers false once the budget is
    /// spent. Pauses double from 10 ms to at most 200 ms, plus up to 15 ms at random so that
    /// two waiting writers do not meet again.
    pub fn wait(&mut self) -> bool {
        self.pause_ms = (self.pause_ms * 2).min(200);
        let jitter = random_bytes::<1>()
            .map(|[b]| u64::from(b) % 16)
            .unwrap_or(0);
        let pause = std::time::Duration::from_millis(self.pause_ms + jitter);
        if self.since.elapsed() + pause > self.budget {
            return false;
        }
        std::thread::sleep(pause);
        true
    }
}

/// Runs one statement outside a transaction (autocommit), again after a pause while another
/// writer holds the database: a statement that met a lock did nothing.
pub fn autocommit<T>(
    mut statement: impl FnMut() -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    let mut patience = Patience::new(CONTENDED_WAIT);
    loop {
        match statement() {
            Err(e) if e.is_contended() && patience.wait() => {}
            other => return other,
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "storage: {}", self.detail)
    }
}

/// The SQLite database. One value is one connection: `BEGIN` and `COMMIT` span calls.
pub trait Db {
    /// Runs one statement with `?` parameters.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, StorageError>;
}

impl<T: Db + ?Sized> Db for &T {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, StorageError> {
        (**self).execute(sql, params)
    }
}

/// The key-value store.
pub trait Kv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError>;
    fn delete(&self, key: &str) -> Result<(), StorageError>;
}

impl<T: Kv + ?Sized> Kv for &T {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        (**self).get(key)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        (**self).set(key, value)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        (**self).delete(key)
    }
}

/// The one time source.
pub trait Clock {
    fn now(&self) -> jiff::Timestamp;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

/// The one source of randomness: the operating system's (getrandom), on every target.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], StorageError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| StorageError::new(format!("random source: {e}")))?;
    Ok(buf)
}

/// Runs `f` inside `BEGIN IMMEDIATE … COMMIT`, rolling back on error, so concurrent
/// requests serialise on the write lock instead of interleaving.
///
/// When another writer held the database (at `BEGIN`, inside `f` or at `COMMIT`), the
/// transaction is rolled back and runs again after a pause, for up to [`CONTENDED_WAIT`]. A
/// `COMMIT` that fails otherwise is treated as a rollback too (a libSQL server rolls back a
/// transaction it timed out) and runs once more. Running again is safe because `f` only
/// reads and writes the database, and reads again what it decides on.
pub fn transaction<T, E: From<StorageError> + Contention>(
    db: &dyn Db,
    f: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    transaction_within(db, CONTENDED_WAIT, f)
}

/// [`transaction`] with its own time budget for meeting other writers.
pub fn transaction_within<T, E: From<StorageError> + Contention>(
    db: &dyn Db,
    budget: std::time::Duration,
    mut f: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut patience = Patience::new(budget);
    let mut commit_failed = false;
    loop {
        if let Err(e) = db.execute("BEGIN IMMEDIATE", &[]) {
            if e.is_contended() && patience.wait() {
                continue;
            }
            return Err(e.into());
        }
        let value = match f() {
            Ok(v) => v,
            Err(e) => {
                let _ = db.execute("ROLLBACK", &[]);
                if e.is_contended() && patience.wait() {
                    continue;
                }
                return Err(e);
            }
        };
        match db.execute("COMMIT", &[]) {
            Ok(_) => return Ok(value),
            Err(e) => {
                let _ = db.execute("ROLLBACK", &[]);
                let again = if e.is_contended() {
                    patience.wait()
                } else {
                    !std::mem::replace(&mut commit_failed, true)
                };
                if !again {
                    return Err(e.into());
                }
            }
        }
    }
}
