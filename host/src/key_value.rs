//! `fermyon:spin/key-value@2.0.0` on SQLite, in Spin's layout: the `default` store lives in
//! `<state-dir>/sqlite_key_value.db`, table `spin_key_value`.

use std::path::Path;

use anyhow::Result;
use rusqlite::{OptionalExtension, params};
use wasmtime::component::Resource;

use crate::bindings::fermyon::spin::key_value::{self, Error};
use crate::spin_ctx::SpinView;
use crate::sqlite_pool::Pool;

/// An open store, as the guest holds it.
pub struct StoreHandle {
    label: String,
}

/// The key-value stores of the application (only `default`).
pub struct KeyValue {
    pool: Pool,
}

impl KeyValue {
    /// Opens (creating if needed) the key-value database under `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self> {
        let pool = Pool::open(&state_dir.join("sqlite_key_value.db"))?;
        pool.with_at_start(|c| {
            c.execute_batch(
                "CREATE TABLE IF NOT EXISTS spin_key_value (
                    store TEXT NOT NULL,
                    key   TEXT NOT NULL,
                    value BLOB NOT NULL,
                    PRIMARY KEY (store, key)
                )",
            )
        })?;
        Ok(Self { pool })
    }

    async fn run<T>(
        &self,
        f: impl FnMut(&rusqlite::Connection) -> rusqlite::Result<T> + Send,
    ) -> Result<T, Error> {
        self.pool.with(f).await.map_err(|e| {
            let full = e
                .downcast_ref::<rusqlite::Error>()
                .and_then(rusqlite::Error::sqlite_error_code)
                == Some(rusqlite::ErrorCode::DiskFull);
            if full {
                Error::StoreTableFull
            } else {
                Error::Other(e.to_string())
            }
        })
    }
}

impl key_value::Host for SpinView<'_> {}

impl key_value::HostStore for SpinView<'_> {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<StoreHandle>, Error>> {
        if !self.grants.key_value_stores.contains(&label) {
            return Ok(Err(Error::AccessDenied));
        }
        if label != "default" {
            return Ok(Err(Error::NoSuchStore));
        }
        Ok(Ok(self.table.push(StoreHandle { label })?))
    }

    async fn get(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let label = &self.table.get(&store)?.label;
        Ok(self
            .stores
            .key_value
            .run(|c| {
                c.prepare_cached("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .query_row(params![label, key], |r| r.get(0))
                    .optional()
            })
            .await)
    }

    async fn set(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let label = &self.table.get(&store)?.label;
        Ok(self
            .stores
            .key_value
            .run(|c| {
                c.prepare_cached(
                    "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                )?
                .execute(params![label, key, value])
                .map(drop)
            })
            .await)
    }

    async fn delete(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let label = &self.table.get(&store)?.label;
        Ok(self
            .stores
            .key_value
            .run(|c| {
                c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .execute(params![label, key])
                    .map(drop)
            })
            .await)
    }

    async fn exists(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let label = &self.table.get(&store)?.label;
        Ok(self
            .stores
            .key_value
            .run(|c| {
                c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                    .exists(params![label, key])
            })
            .await)
    }

    async fn get_keys(
        &mut self,
        store: Resource<StoreHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let label = &self.table.get(&store)?.label;
        Ok(self
            .stores
            .key_value
            .run(|c| {
                c.prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?
                    .query_map(params![label], |r| r.get(0))?
                    .collect()
            })
            .await)
    }

    async fn drop(&mut self, store: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
