//! Several clinics on one deployment: which clinic a request is for (from its host name), and
//! the one layer through which every use case reaches that clinic's data.
//!
//! Every table that holds a clinic's data has `clinic_id`. Use cases never see the raw
//! database: the context they run on hands them a [`Scoped`] one, which binds the clinic
//! as the statement's `?1` and refuses a statement that does not name it, so that no query
//! can forget the clinic. Key-value keys are prefixed by the clinic the same way
//! ([`ScopedKv`]).

use crate::ports::{Db, Kv, Rows, StorageError, Value};

/// A clinic's id. Clinic 1 is the one a deployment without a host map serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClinicId(pub i64);

/// The clinic of an installation that maps no host names: everything that was there before
/// clinics existed, and every request while no host is mapped.
pub const FIRST: ClinicId = ClinicId(1);

/// The operators' own clinic: its administrators are the deployment's operators, its audit
/// chain is the operator's log. Reached only on a host name mapped to it or named by the
/// `operator_host` variable; never metered.
pub const OPERATORS: ClinicId = ClinicId(0);

/// What a clinic's record sets for itself; `None` leaves the deployment's Spin variable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub name: Option<String>,
    pub mail_from: Option<String>,
    pub portal_url: Option<String>,
    pub time_zone: Option<String>,
    /// The password and session settings, each named as its Spin variable
    /// ([`NUMBERS`]), in that order.
    pub numbers: [Option<i64>; 4],
}

/// The numeric settings a clinic may set for itself: the Spin variables, which are also the
/// columns of `clinics` and the operator's field names.
pub const NUMBERS: [&str; 4] = [
    "password_min_length",
    "temp_password_ttl_hours",
    "session_idle_minutes",
    "session_absolute_hours",
];

impl Overrides {
    /// The clinic's own value of a Spin variable it may set for itself, if it does.
    pub fn variable(&self, name: &str) -> Option<String> {
        match name {
            "clinic_name" => self.name.clone(),
            "mail_from" => self.mail_from.clone(),
            "portal_url" => self.portal_url.clone(),
            "clinic_timezone" => self.time_zone.clone(),
            _ => NUMBERS
                .iter()
                .position(|n| *n == name)
                .and_then(|i| self.numbers[i])
                .map(|n| n.to_string()),
        }
    }

    /// Whether the clinic sets any of the rules' settings (not only mail's).
    pub fn sets_rules(&self) -> bool {
        self.time_zone.is_some() || self.numbers.iter().any(Option::is_some)
    }
}

/// The clinic a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clinic {
    pub id: ClinicId,
    pub overrides: Overrides,
}

/// Why a request has no clinic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoClinic {
    /// Host names are mapped and this one is not among them (or the request named none).
    UnknownHost,
    /// The clinic exists but its operator has suspended it.
    Suspended,
}

/// The host name a request was sent to, as the map keeps it: lower case, without a port or
/// a trailing dot. `None` for a value no host name could be.
pub fn normalise_host(host: &str) -> Option<String> {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // An IPv6 literal, `[::1]:3000`.
        &host[..rest.find(']')? + 2]
    } else {
        host.rsplit_once(':').map_or(host, |(name, _port)| name)
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'[' | b']' | b':'));
    valid.then_some(name)
}

/// The clinic for requests sent to `host`: the operators' on `operator_host` (the variable,
/// so that a fresh installation can reach its operator's page before any host is mapped);
/// with no host mapped at all, clinic 1 (a single-clinic installation); otherwise the clinic
/// the host is mapped to. One statement.
pub fn resolve(
    db: &dyn Db,
    host: Option<&str>,
    operator_host: Option<&str>,
) -> Result<Result<Clinic, NoClinic>, StorageError> {
    let host = host.and_then(normalise_host).unwrap_or_default();
    let operator = operator_host
        .and_then(normalise_host)
        .is_some_and(|o| o == host && !host.is_empty());
    let rows = db.execute(
        "SELECT c.id, c.status, c.name, c.mail_from, c.portal_url, c.time_zone,
                c.password_min_length, c.temp_password_ttl_hours, c.session_idle_minutes,
                c.session_absolute_hours
         FROM clinics c
         WHERE CASE WHEN ?2 THEN c.id = 0
               ELSE c.id = (SELECT clinic_id FROM clinic_hosts WHERE host = ?1)
                 OR (c.id = 1 AND NOT EXISTS (SELECT 1 FROM clinic_hosts)) END",
        &[host.into(), operator.into()],
    )?;
    let Some(r) = rows.first() else {
        return Ok(Err(NoClinic::UnknownHost));
    };
    if r.text(1) != Some("active") {
        return Ok(Err(NoClinic::Suspended));
    }
    let text = |i| r.text(i).filter(|t| !t.is_empty()).map(str::to_string);
    Ok(Ok(Clinic {
        id: ClinicId(r.int(0).unwrap_or_default()),
        overrides: Overrides {
            name: text(2),
            mail_from: text(3),
            portal_url: text(4),
            time_zone: text(5),
            numbers: [r.int(6), r.int(7), r.int(8), r.int(9)],
        },
    }))
}

/// Statements that are not about any table: they pass through unbound.
fn is_control(sql: &str) -> bool {
    let word = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default();
    ["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
}

/// Whether `sql` binds the clinic as `?1` with no bare `?` before it (which would take
/// number 1 too). Parameters before it are numbered (`SET phc = ?2 WHERE clinic_id = ?1`).
fn names_clinic_first(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b != b'?' {
            continue;
        }
        let digits: Vec<u8> = bytes[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .copied()
            .collect();
        match digits.as_slice() {
            [] => return false,
            b"1" => return true,
            _ => {}
        }
    }
    false
}

/// One clinic's view of the database: every statement names the clinic as `?1`, which this
/// binds; any other statement (save transaction control) is refused before it runs.
pub struct Scoped<D> {
    db: D,
    clinic: ClinicId,
}

impl<D: Db> Scoped<D> {
    pub fn new(db: D, clinic: ClinicId) -> Self {
        Self { db, clinic }
    }

    pub fn clinic(&self) -> ClinicId {
        self.clinic
    }

    /// The whole database, for the deployment's own work (migrations, delivery webhooks,
    /// which may be about any clinic's email): never handed to a use case of one clinic.
    pub fn unscoped(&self) -> &D {
        &self.db
    }
}

impl<D: Db> Db for Scoped<D> {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, StorageError> {
        if is_control(sql) {
            return self.db.execute(sql, params);
        }
        if !names_clinic_first(sql) {
            return Err(StorageError::new(format!(
                "a statement on clinic data must bind the clinic as ?1 first: {}",
                sql.split_whitespace().collect::<Vec<_>>().join(" ")
            )));
        }
        let mut bound = Vec::with_capacity(params.len() + 1);
        bound.push(Value::Integer(self.clinic.0));
        bound.extend_from_slice(params);
        self.db.execute(sql, &bound)
    }
}

/// One clinic's view of the key-value store: every key is prefixed `caseport/<clinic>/`.
pub struct ScopedKv<K> {
    kv: K,
    prefix: String,
}

impl<K: Kv> ScopedKv<K> {
    pub fn new(kv: K, clinic: ClinicId) -> Self {
        Self {
            kv,
            prefix: key_prefix(clinic),
        }
    }

    /// The whole store, for the deployment's own work.
    pub fn unscoped(&self) -> &K {
        &self.kv
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

/// Where a clinic's key-value keys start.
pub fn key_prefix(clinic: ClinicId) -> String {
    format!("caseport/{}/", clinic.0)
}

impl<K: Kv> Kv for ScopedKv<K> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.kv.get(&self.key(key))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.kv.set(&self.key(key), value)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.kv.delete(&self.key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::{NativeDb, NativeKv};

    #[test]
    fn host_names_are_kept_lower_case_without_port_or_trailing_dot() {
        assert_eq!(
            normalise_host("North.Localhost:3000").as_deref(),
            Some("north.localhost")
        );
        assert_eq!(
            normalise_host("portal.clinic.example.").as_deref(),
            Some("portal.clinic.example")
        );
        assert_eq!(normalise_host("[::1]:3000").as_deref(), Some("[::1]"));
        assert_eq!(normalise_host("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(normalise_host(""), None);
        assert_eq!(normalise_host("evil.example/path"), None);
        assert_eq!(normalise_host("a b"), None);
    }

    #[test]
    fn the_scoped_database_refuses_a_statement_that_does_not_bind_the_clinic_first() {
        let db = NativeDb::in_memory().unwrap();
        crate::schema::migrate(&db).unwrap();
        let scoped = Scoped::new(&db, FIRST);
        let refused = |sql: &str| {
            let e = scoped.execute(sql, &[1.into()]).unwrap_err();
            assert!(e.detail.contains("?1"), "{sql}: {e}");
        };
        refused("SELECT id FROM clients WHERE id = ?");
        refused("SELECT id FROM clients WHERE id = ? AND clinic_id = ?1");
        refused("SELECT id FROM clients WHERE clinic_id = ?12");
        refused("UPDATE clients SET email = ? WHERE clinic_id = ?1");
        scoped
            .execute(
                "UPDATE clients SET email = ?2 WHERE clinic_id = ?1 AND id = ?",
                &["a@b.example".into(), 0.into()],
            )
            .unwrap();
        let rows = scoped
            .execute(
                "SELECT count(*) FROM clients WHERE clinic_id = ?1 AND id > ?",
                &[0.into()],
            )
            .unwrap();
        assert_eq!(rows.first().and_then(|r| r.int(0)), Some(0));
        scoped.execute("BEGIN IMMEDIATE", &[]).unwrap();
        scoped.execute("ROLLBACK", &[]).unwrap();
    }

    #[test]
    fn with_no_host_mapped_every_host_is_clinic_one_and_with_a_map_only_mapped_hosts_are() {
        let db = NativeDb::in_memory().unwrap();
        crate::schema::migrate(&db).unwrap();
        let first = resolve(&db, Some("anything.example"), None)
            .unwrap()
            .unwrap();
        assert_eq!(first.id, FIRST);
        assert_eq!(resolve(&db, None, None).unwrap().unwrap().id, FIRST);
        // The operator's host name, set by the variable, before any host is mapped.
        let ops = resolve(&db, Some("ops.example:443"), Some("OPS.example")).unwrap();
        assert_eq!(ops.unwrap().id, OPERATORS);
        assert_eq!(resolve(&db, None, Some("")).unwrap().unwrap().id, FIRST);
        db.execute(
            "INSERT INTO clinics (id, name, status, created_at) VALUES (2, 'South', 'active', 'now')",
            &[],
        )
        .unwrap();
        db.execute(
            "INSERT INTO clinic_hosts (host, clinic_id) VALUES ('south.localhost', 2), ('north.localhost', 1)",
            &[],
        )
        .unwrap();
        let south = resolve(&db, Some("SOUTH.localhost:3000"), None)
            .unwrap()
            .unwrap();
        assert_eq!(south.id, ClinicId(2));
        assert_eq!(south.overrides.name.as_deref(), Some("South"));
        assert_eq!(
            resolve(&db, Some("north.localhost"), None)
                .unwrap()
                .unwrap()
                .id,
            FIRST
        );
        assert_eq!(
            resolve(&db, Some("anything.example"), None).unwrap(),
            Err(NoClinic::UnknownHost)
        );
        assert_eq!(
            resolve(&db, None, None).unwrap(),
            Err(NoClinic::UnknownHost)
        );
        let ops = resolve(&db, Some("ops.example"), Some("ops.example")).unwrap();
        assert_eq!(ops.unwrap().id, OPERATORS);
        db.execute("UPDATE clinics SET status = 'suspended' WHERE id = 2", &[])
            .unwrap();
        assert_eq!(
            resolve(&db, Some("south.localhost"), None).unwrap(),
            Err(NoClinic::Suspended)
        );
    }

    #[test]
    fn each_clinic_sees_only_its_own_keys() {
        let kv = NativeKv::in_memory().unwrap();
        let north = ScopedKv::new(&kv, FIRST);
        let south = ScopedKv::new(&kv, ClinicId(2));
        north.set("session/x", b"north").unwrap();
        assert_eq!(south.get("session/x").unwrap(), None);
        assert_eq!(
            north.get("session/x").unwrap().as_deref(),
            Some(&b"north"[..])
        );
        assert_eq!(
            kv.get("caseport/1/session/x").unwrap().as_deref(),
            Some(&b"north"[..])
        );
    }
}
