//! `--runtime-config-file`: Spin's `runtime-config.toml`, the part this runtime honours —
//! where each key-value store and SQLite database lives. As Spin reads it:
//!
//! ```toml
//! [key_value_store.default]
//! type = "redis"                    # or "spin", with an optional `path`
//! url = "redis://127.0.0.1:6379"
//!
//! [sqlite_database.default]
//! type = "libsql"                   # or "spin", with an optional `path`
//! url = "http://127.0.0.1:8080"
//! token = "…"
//! ```
//!
//! A `spin` store's relative `path` is resolved as Spin does: a key-value file against the
//! runtime config's directory, a database file against the current directory. Anything else
//! (another type, an unknown field or table) is refused with one line naming the file, the
//! field and the fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// Where one key-value store lives.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValueBackend {
    /// A SQLite file (Spin's `spin` type); `None` keeps it in memory.
    Spin { path: Option<PathBuf> },
    /// A Redis server. As in Spin, the store's label is not part of the keys: every label on
    /// one server shares one keyspace.
    Redis { url: String },
}

/// Where one SQLite database lives.
#[derive(Debug, Clone, PartialEq)]
pub enum SqliteBackend {
    /// A local file (Spin's `spin` type); `None` keeps it in memory. `ATTACH` of another file
    /// is refused unless `allow_attach_file`, as in Spin.
    Spin {
        path: Option<PathBuf>,
        allow_attach_file: bool,
    },
    /// A libSQL server (sqld, Turso), over HTTP.
    LibSql { url: String, token: String },
}

/// The stores and databases a runtime config defines, by label.
#[derive(Debug, Default, Clone)]
pub struct RuntimeConfig {
    pub key_value_stores: BTreeMap<String, KeyValueBackend>,
    pub sqlite_databases: BTreeMap<String, SqliteBackend>,
}

impl RuntimeConfig {
    /// What it defines, as Spin words it at start:
    /// `[key_value_store.default: redis], [sqlite_database.default: libsql]`.
    pub fn summary(&self) -> String {
        let stores = self.key_value_stores.iter().map(|(label, b)| {
            let kind = match b {
                KeyValueBackend::Spin { .. } => "spin",
                KeyValueBackend::Redis { .. } => "redis",
            };
            format!("[key_value_store.{label}: {kind}]")
        });
        let databases = self.sqlite_databases.iter().map(|(label, b)| {
            let kind = match b {
                SqliteBackend::Spin { .. } => "spin",
                SqliteBackend::LibSql { .. } => "libsql",
            };
            format!("[sqlite_database.{label}: {kind}]")
        });
        stores.chain(databases).collect::<Vec<_>>().join(", ")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    key_value_store: BTreeMap<String, toml::Table>,
    #[serde(default)]
    sqlite_database: BTreeMap<String, toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpinStore {
    #[serde(default)]
    path: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpinDatabase {
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    allow_attach_file: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedisStore {
    url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LibSqlDatabase {
    url: String,
    token: String,
}

impl RuntimeConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the runtime config {}: check the path given to --runtime-config-file",
                path.display()
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        Self::parse(&text, &path.display().to_string(), base, &cwd)
    }

    /// Parses runtime config text; `file` names it in messages, `config_dir` and `cwd` are
    /// what relative key-value and database paths are resolved against.
    pub fn parse(text: &str, file: &str, config_dir: &Path, cwd: &Path) -> Result<Self> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "{file}: {}; this runtime reads only [key_value_store.LABEL] and [sqlite_database.LABEL] tables",
                e.message().trim()
            )
        })?;
        let mut config = Self::default();
        for (label, table) in raw.key_value_store {
            let at = format!("{file}: key_value_store.{label}");
            let backend = match typed(&table, &at)? {
                ("spin", rest) => {
                    let s: SpinStore = fields(rest, &at, "path")?;
                    KeyValueBackend::Spin {
                        path: s.path.map(|p| config_dir.join(p)),
                    }
                }
                ("redis", rest) => {
                    let r: RedisStore = fields(rest, &at, "url")?;
                    if !(r.url.starts_with("redis://") || r.url.starts_with("rediss://")) {
                        bail!(
                            "{at}.url = {:?} is not a Redis URL; write it as redis://HOST:PORT",
                            r.url
                        );
                    }
                    KeyValueBackend::Redis { url: r.url }
                }
                (other, _) => bail!(
                    "{at}.type = \"{other}\" is not supported by this runtime; use \"spin\" (a local file) or \"redis\""
                ),
            };
            config.key_value_stores.insert(label, backend);
        }
        for (label, table) in raw.sqlite_database {
            let at = format!("{file}: sqlite_database.{label}");
            let backend = match typed(&table, &at)? {
                ("spin", rest) => {
                    let s: SpinDatabase = fields(rest, &at, "path and allow_attach_file")?;
                    SqliteBackend::Spin {
                        path: s.path.map(|p| cwd.join(p)),
                        allow_attach_file: s.allow_attach_file,
                    }
                }
                ("libsql", rest) => {
                    let l: LibSqlDatabase = fields(rest, &at, "url and token")?;
                    if !(l.url.starts_with("http://") || l.url.starts_with("https://")) {
                        bail!(
                            "{at}.url = {:?} must start with http:// or https:// (libSQL is reached over HTTP)",
                            l.url
                        );
                    }
                    SqliteBackend::LibSql {
                        url: l.url,
                        token: l.token,
                    }
                }
                (other, _) => bail!(
                    "{at}.type = \"{other}\" is not supported by this runtime; use \"spin\" (a local file) or \"libsql\""
                ),
            };
            config.sqlite_databases.insert(label, backend);
        }
        Ok(config)
    }
}

/// The `type` of a store table and the rest of its fields.
fn typed<'a>(table: &'a toml::Table, at: &str) -> Result<(&'a str, toml::Table)> {
    let Some(kind) = table.get("type").and_then(toml::Value::as_str) else {
        bail!("{at} has no type; add type = \"spin\", \"redis\" or \"libsql\"");
    };
    let mut rest = table.clone();
    rest.remove("type");
    Ok((kind, rest))
}

/// The fields of one store type, or one line naming what is wrong.
fn fields<T: serde::de::DeserializeOwned>(
    rest: toml::Table,
    at: &str,
    expected: &str,
) -> Result<T> {
    T::deserialize(rest)
        .map_err(|e| anyhow::anyhow!("{at}: {}; this type takes {expected}", e.message().trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RuntimeConfig> {
        RuntimeConfig::parse(
            text,
            "rc.toml",
            Path::new("/etc/caseport"),
            Path::new("/srv"),
        )
    }

    fn error(text: &str) -> String {
        parse(text)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default()
    }

    #[test]
    fn redis_and_libsql_are_read() -> Result<()> {
        let c = parse(
            r#"
[key_value_store.default]
type = "redis"
url = "redis://127.0.0.1:6379"
[sqlite_database.default]
type = "libsql"
url = "http://127.0.0.1:8080"
token = ""
"#,
        )?;
        assert_eq!(
            c.key_value_stores["default"],
            KeyValueBackend::Redis {
                url: "redis://127.0.0.1:6379".into()
            }
        );
        assert!(matches!(
            c.sqlite_databases["default"],
            SqliteBackend::LibSql { .. }
        ));
        Ok(())
    }

    #[test]
    fn the_summary_names_each_label_and_type_as_spin_does() -> Result<()> {
        let c = parse(
            "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://x\"\ntoken = \"\"\n[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://x\"\n",
        )?;
        assert_eq!(
            c.summary(),
            "[key_value_store.default: redis], [sqlite_database.default: libsql]"
        );
        Ok(())
    }

    #[test]
    fn spin_paths_are_resolved_as_spin_does() -> Result<()> {
        let c = parse(
            r#"
[key_value_store.cache]
type = "spin"
path = "kv.db"
[sqlite_database.default]
type = "spin"
path = "data/app.db"
"#,
        )?;
        assert_eq!(
            c.key_value_stores["cache"],
            KeyValueBackend::Spin {
                path: Some("/etc/caseport/kv.db".into())
            }
        );
        assert_eq!(
            c.sqlite_databases["default"],
            SqliteBackend::Spin {
                path: Some("/srv/data/app.db".into()),
                allow_attach_file: false,
            }
        );
        Ok(())
    }

    #[test]
    fn mistakes_get_one_line_naming_the_field_and_the_fix() {
        let unknown_type = error("[key_value_store.default]\ntype = \"azure_cosmos\"\n");
        assert!(
            unknown_type.contains("rc.toml: key_value_store.default.type"),
            "{unknown_type}"
        );
        assert!(unknown_type.contains("\"redis\""), "{unknown_type}");
        let unknown_field = error(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://x\"\npassword = \"p\"\n",
        );
        assert!(unknown_field.contains("password"), "{unknown_field}");
        let no_token = error("[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://x\"\n");
        assert!(no_token.contains("token"), "{no_token}");
        let other_table = error("[llm_compute]\ntype = \"spin\"\n");
        assert!(other_table.contains("llm_compute"), "{other_table}");
        let bad_url =
            error("[key_value_store.default]\ntype = \"redis\"\nurl = \"localhost:6379\"\n");
        assert!(bad_url.contains("redis://"), "{bad_url}");
        for e in [unknown_type, unknown_field, no_token, other_table, bad_url] {
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
}
