//! `fermyon:spin/key-value@2.0.0`. The `default` store lives in
//! `<state-dir>/sqlite_key_value.db`, table `spin_key_value`, as in Spin; a runtime config may
//! put any store in another file or on a Redis server, as Spin's `spin` and `redis` types do.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use rusqlite::{OptionalExtension, params};
use tokio::sync::OnceCell;
use wasmtime::component::Resource;

use crate::bindings::fermyon::spin::key_value::{self, Error};
use crate::runtime_config::{KeyValueBackend, RuntimeConfig};
use crate::spin_ctx::SpinView;
use crate::sqlite_pool::Pool;

/// An open store, as the guest holds it.
pub struct StoreHandle {
    label: String,
}

/// Where one store's keys live.
enum Backend {
    /// A SQLite file: table `spin_key_value`, rows `(store, key, value)`.
    File(Arc<Pool>),
    /// A Redis server; the label is not part of the keys (as in Spin).
    Redis(Arc<RedisStore>),
}

/// A Redis server, connected on first use (and again after a drop, by the manager).
struct RedisStore {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
}

impl RedisStore {
    async fn connection(&self) -> Result<ConnectionManager, Error> {
        self.connection
            .get_or_try_init(|| {
                // Bounded, so that a server that is down costs a request seconds, not its
                // whole time limit: two attempts of at most 2 s, and 5 s for any answer.
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(1)
                    .set_connection_timeout(Duration::from_secs(2))
                    .set_response_timeout(Duration::from_secs(5));
                self.client.get_connection_manager_with_config(config)
            })
            .await
            .cloned()
            .map_err(|e| Error::Other(format!("Redis: {e}")))
    }
}

/// The key-value stores of the application, by label.
pub struct KeyValue {
    stores: HashMap<String, Backend>,
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS spin_key_value (
    store TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (store, key)
)";

impl KeyValue {
    /// Opens the stores: `default` in the state directory unless the runtime config puts it
    /// elsewhere, and every store the runtime config defines.
    pub fn open(state_dir: &Path, config: &RuntimeConfig) -> Result<Self> {
        let mut files: HashMap<std::path::PathBuf, Arc<Pool>> = HashMap::new();
        let mut stores = HashMap::new();
        let mut backends: Vec<(String, KeyValueBackend)> = config
            .key_value_stores
            .iter()
            .map(|(l, b)| (l.clone(), b.clone()))
            .collect();
        if !config.key_value_stores.contains_key("default") {
            backends.push((
                "default".into(),
                KeyValueBackend::Spin {
                    path: Some(state_dir.join("sqlite_key_value.db")),
                },
            ));
        }
        for (label, backend) in backends {
            let store = match backend {
                KeyValueBackend::Spin { path: Some(path) } => {
                    let pool = match files.get(&path) {
                        Some(p) => p.clone(),
                        None => {
                            let pool = Arc::new(Pool::open(&path, true, true)?);
                            pool.with_at_start(|c| c.execute_batch(CREATE_TABLE))?;
                            files.insert(path, pool.clone());
                            pool
                        }
                    };
                    Backend::File(pool)
                }
                KeyValueBackend::Spin { path: None } => bail!(
                    "key_value_store.{label}: a store with no path is kept in memory by Spin, which this runtime does not do; give it a path"
                ),
                KeyValueBackend::Redis { url } => Backend::Redis(Arc::new(RedisStore {
                    client: redis::Client::open(url.as_str())
                        .map_err(|e| anyhow::anyhow!("key_value_store.{label}.url: {e}"))?,
                    connection: OnceCell::new(),
                })),
            };
            stores.insert(label, store);
        }
        Ok(Self { stores })
    }

    /// Whether a store with this label exists.
    pub fn has(&self, label: &str) -> bool {
        self.stores.contains_key(label)
    }

    /// Where a store keeps its data, as Spin words it at start.
    pub fn summary(&self, label: &str) -> Option<String> {
        Some(match self.stores.get(label)? {
            Backend::File(pool) => format!("\"{}\"", pool.path().display()),
            Backend::Redis(redis) => {
                format!("Redis at {}", redis.client.get_connection_info().addr)
            }
        })
    }

    fn backend(&self, label: &str) -> Result<&Backend, Error> {
        self.stores.get(label).ok_or(Error::NoSuchStore)
    }
}

/// Runs `f` on a store file's pool; a full disk is the store's "table full".
async fn on_file<T>(
    pool: &Pool,
    f: impl FnMut(&rusqlite::Connection) -> rusqlite::Result<T> + Send,
) -> Result<T, Error> {
    pool.with(f).await.map_err(|e| {
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

fn redis_error(e: redis::RedisError) -> Error {
    Error::Other(format!("Redis: {e}"))
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
        match self.stores.key_value.backend(&label) {
            Err(e) => return Ok(Err(e)),
            // As Spin's: a Redis store connects when opened, so an unreachable server fails
            // here, before the guest has written anything.
            Ok(Backend::Redis(redis)) => {
                if let Err(e) = redis.connection().await {
                    return Ok(Err(e));
                }
            }
            Ok(Backend::File(_)) => {}
        }
        Ok(Ok(self.table.push(StoreHandle { label })?))
    }

    async fn get(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let label = &self.table.get(&store)?.label;
        Ok(match self.stores.key_value.backend(label) {
            Ok(Backend::File(pool)) => {
                on_file(pool, |c| {
                    c.prepare_cached(
                        "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2",
                    )?
                    .query_row(params![label, key], |r| r.get(0))
                    .optional()
                })
                .await
            }
            Ok(Backend::Redis(r)) => match r.connection().await {
                Ok(mut c) => c.get(&key).await.map_err(redis_error),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        })
    }

    async fn set(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let label = &self.table.get(&store)?.label;
        Ok(match self.stores.key_value.backend(label) {
            Ok(Backend::File(pool)) => {
                on_file(pool, |c| {
                    c.prepare_cached(
                        "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                    )?
                    .execute(params![label, key, value])
                    .map(drop)
                })
                .await
            }
            Ok(Backend::Redis(r)) => match r.connection().await {
                Ok(mut c) => c.set(&key, value).await.map_err(redis_error),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        })
    }

    async fn delete(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let label = &self.table.get(&store)?.label;
        Ok(match self.stores.key_value.backend(label) {
            Ok(Backend::File(pool)) => {
                on_file(pool, |c| {
                    c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                        .execute(params![label, key])
                        .map(drop)
                })
                .await
            }
            Ok(Backend::Redis(r)) => match r.connection().await {
                Ok(mut c) => c.del(&key).await.map_err(redis_error),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        })
    }

    async fn exists(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let label = &self.table.get(&store)?.label;
        Ok(match self.stores.key_value.backend(label) {
            Ok(Backend::File(pool)) => {
                on_file(pool, |c| {
                    c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store = ?1 AND key = ?2")?
                        .exists(params![label, key])
                })
                .await
            }
            Ok(Backend::Redis(r)) => match r.connection().await {
                Ok(mut c) => c.exists(&key).await.map_err(redis_error),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        })
    }

    async fn get_keys(
        &mut self,
        store: Resource<StoreHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let label = &self.table.get(&store)?.label;
        Ok(match self.stores.key_value.backend(label) {
            Ok(Backend::File(pool)) => {
                on_file(pool, |c| {
                    c.prepare_cached(
                        "SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key",
                    )?
                    .query_map(params![label], |r| r.get(0))?
                    .collect()
                })
                .await
            }
            // As Spin does: every key of the server, whatever the label.
            Ok(Backend::Redis(r)) => match r.connection().await {
                Ok(mut c) => c.keys("*").await.map_err(redis_error),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        })
    }

    async fn drop(&mut self, store: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}
