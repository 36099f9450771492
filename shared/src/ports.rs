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
    /// The storage has no room left: nothing of the failed write was kept.
    pub full: bool,
    pub detail: String,
}

impl StorageError {
    /// A failure, described for the operator.
    pub fn new(detail: impl Into<String>) -> Self {
        Self {
            full: false,
            detail: detail.into(),
        }
    }

    /// The storage is full.
    pub fn full(detail: impl Into<String>) -> Self {
        Self {
            full: true,
            detail: detail.into(),
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

/// The key-value store.
pub trait Kv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError>;
    fn delete(&self, key: &str) -> Result<(), StorageError>;
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
pub fn transaction<T, E: From<StorageError>>(
    db: &dyn Db,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    db.execute("BEGIN IMMEDIATE", &[])?;
    match f() {
        Ok(v) => {
            db.execute("COMMIT", &[])?;
            Ok(v)
        }
        Err(e) => {
            let _ = db.execute("ROLLBACK", &[]);
            Err(e)
        }
    }
}
