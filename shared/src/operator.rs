//! The operator's work above the clinics: create a clinic with its first administrator, set its
//! host names and settings, suspend it, export all of it and delete it for good; and the usage
//! each clinic is billed for.
//!
//! Operators are the administrators of clinic 0 (`clinics::OPERATORS`), reached on the host
//! names mapped to it (or the `operator_host` variable): they sign in, are locked out, change
//! their passwords and are added like any staff, and clinic 0's audit chain is the operator's
//! audit log. The functions here take the deployment's unscoped database; each clinic's data is
//! reached through that clinic's scope.

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::api_error::{ApiError, Code};
use crate::audit::{self, Verdict};
use crate::clinics::{self, ClinicId, OPERATORS, Scoped};
use crate::credentials;
use crate::ctx::Ctx;
use crate::domain::{Account, DisplayName, Email, Password};
use crate::passwords;
use crate::ports::{Db, Kv, Row, StorageError, Value, transaction};

/// A clinic as the operator's page lists it.
#[derive(Debug, Serialize)]
pub struct ClinicView {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub hosts: Vec<String>,
    pub mail_from: Option<String>,
    pub portal_url: Option<String>,
    pub time_zone: Option<String>,
    pub password_min_length: Option<i64>,
    pub temp_password_ttl_hours: Option<i64>,
    pub session_idle_minutes: Option<i64>,
    pub session_absolute_hours: Option<i64>,
    pub created_at: String,
    pub staff: i64,
    pub clients: i64,
}

const CLINIC_COLUMNS: &str = "k.id, k.name, k.status, k.mail_from, k.portal_url, k.time_zone, k.created_at,
    (SELECT group_concat(host, ' ') FROM (SELECT host FROM clinic_hosts WHERE clinic_id = k.id ORDER BY host)),
    (SELECT count(*) FROM staff WHERE clinic_id = k.id),
    (SELECT value FROM counters WHERE name = 'clients/' || k.id),
    k.password_min_length, k.temp_password_ttl_hours, k.session_idle_minutes, k.session_absolute_hours";

fn clinic_view(r: Row<'_>) -> ClinicView {
    let text = |i| r.text(i).map(str::to_string);
    ClinicView {
        id: r.int(0).unwrap_or_default(),
        name: text(1).unwrap_or_default(),
        status: text(2).unwrap_or_default(),
        mail_from: text(3),
        portal_url: text(4),
        time_zone: text(5),
        created_at: text(6).unwrap_or_default(),
        hosts: r
            .text(7)
            .map(|h| h.split(' ').map(str::to_string).collect())
            .unwrap_or_default(),
        staff: r.int(8).unwrap_or_default(),
        clients: r.int(9).unwrap_or_default(),
        password_min_length: r.int(10),
        temp_password_ttl_hours: r.int(11),
        session_idle_minutes: r.int(12),
        session_absolute_hours: r.int(13),
    }
}

/// A field that may be absent (leave it), `null` (back to the deployment's) or a value.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Every clinic but the operators' own, oldest first.
pub fn list(db: &dyn Db) -> Result<Vec<ClinicView>, StorageError> {
    Ok(db
        .execute(
            &format!("SELECT {CLINIC_COLUMNS} FROM clinics k WHERE k.id != 0 ORDER BY k.id"),
            &[],
        )?
        .iter()
        .map(clinic_view)
        .collect())
}

fn one(db: &dyn Db, id: i64) -> Result<Option<ClinicView>, StorageError> {
    Ok(db
        .execute(
            &format!("SELECT {CLINIC_COLUMNS} FROM clinics k WHERE k.id = ? AND k.id != 0"),
            &[id.into()],
        )?
        .first()
        .map(clinic_view))
}

/// What a clinic sets for itself; on a change, an absent field stays as it is and an empty
/// one goes back to the deployment's variable.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClinicFields {
    pub name: Option<String>,
    pub hosts: Option<Vec<String>>,
    pub mail_from: Option<String>,
    pub portal_url: Option<String>,
    pub time_zone: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub password_min_length: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub temp_password_ttl_hours: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub session_idle_minutes: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub session_absolute_hours: Option<Option<i64>>,
}

impl ClinicFields {
    /// The numeric settings in the order of `clinics::NUMBERS`.
    fn numbers(&self) -> [Option<Option<i64>>; 4] {
        [
            self.password_min_length,
            self.temp_password_ttl_hours,
            self.session_idle_minutes,
            self.session_absolute_hours,
        ]
    }
}

/// `POST /api/operator/clinics`: the clinic and its first administrator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClinic {
    #[serde(flatten)]
    pub fields: ClinicFields,
    pub admin_email: String,
    pub admin_name: String,
}

/// A new clinic, and its first administrator's temporary password: shown to the operator
/// once, never stored (the component writes the answer with `Password::expose`).
#[derive(Debug)]
pub struct Created {
    pub clinic: ClinicView,
    pub admin_username: String,
    pub temporary_password: Password,
    pub expires_at: String,
}

/// Checked clinic fields, ready to write.
struct Checked {
    name: Option<String>,
    hosts: Option<Vec<String>>,
    mail_from: Option<Option<String>>,
    portal_url: Option<Option<String>>,
    time_zone: Option<Option<String>>,
    numbers: [Option<Option<i64>>; 4],
}

fn optional(value: &Option<String>) -> Option<Option<String>> {
    value
        .as_ref()
        .map(|v| Some(v.trim().to_string()).filter(|v| !v.is_empty()))
}

fn check(fields: &ClinicFields) -> Result<Checked, ApiError> {
    let name = match &fields.name {
        Some(n) => {
            let n = n.trim();
            if n.is_empty() || n.chars().count() > 100 || n.chars().any(char::is_control) {
                return Err(ApiError::invalid(
                    "name",
                    "Enter the clinic's name (at most 100 characters).",
                ));
            }
            Some(n.to_string())
        }
        None => None,
    };
    let hosts = match &fields.hosts {
        Some(hosts) => {
            let mut out = Vec::new();
            for h in hosts {
                let host = clinics::normalise_host(h)
                    .filter(|n| n.contains('.') || n == "localhost")
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "hosts",
                            format!("{h:?} is not a host name such as portal.clinic.example."),
                        )
                    })?;
                if !out.contains(&host) {
                    out.push(host);
                }
            }
            Some(out)
        }
        None => None,
    };
    let portal_url = optional(&fields.portal_url);
    if let Some(Some(url)) = &portal_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(ApiError::invalid(
            "portal_url",
            "The portal address starts with https:// (or http:// for a local run).",
        ));
    }
    let time_zone = optional(&fields.time_zone);
    if let Some(Some(zone)) = &time_zone
        && crate::zones::canonical(zone).is_none()
    {
        return Err(ApiError::invalid(
            "time_zone",
            format!("{zone:?} is not a time zone name such as America/Chicago."),
        ));
    }
    // The same ranges as the Spin variables: checked by the same code.
    let numbers = fields.numbers();
    crate::settings::Settings::from_variables(|name| {
        clinics::NUMBERS
            .iter()
            .position(|n| *n == name)
            .and_then(|i| numbers[i].flatten())
            .map(|n| n.to_string())
    })
    .map_err(|e| {
        let rule = e
            .problem
            .split_once(" must ")
            .map_or(e.problem.as_str(), |(_, r)| r);
        ApiError::invalid(e.variable, format!("{} must {rule}.", e.variable))
    })?;
    Ok(Checked {
        numbers,
        name,
        hosts,
        mail_from: optional(&fields.mail_from),
        portal_url: portal_url.map(|u| u.map(|u| u.trim_end_matches('/').to_string())),
        time_zone,
    })
}

/// Maps `hosts` to `clinic` (and nothing else to it); a host another clinic has is refused,
/// and so is `operator_host` (the operators would keep it). So is the first host name while
/// another clinic has none: once any host name is mapped, a clinic without one can no longer
/// be reached (an installation's first clinic answers every host name only while none is
/// mapped).
fn set_hosts(
    db: &dyn Db,
    clinic: i64,
    hosts: &[String],
    operator_host: Option<&str>,
) -> Result<(), ApiError> {
    let operators = operator_host.and_then(clinics::normalise_host);
    if let Some(host) = hosts.iter().find(|h| Some(*h) == operators.as_ref()) {
        return Err(ApiError::new(
            Code::HostInUse,
            format!("{host} is the operators' own host name (the operator_host variable)."),
        )
        .at("hosts"));
    }
    let stranded = db.execute(
        "SELECT k.name, k.id FROM clinics k WHERE k.id NOT IN (0, ?)
           AND NOT EXISTS (SELECT 1 FROM clinic_hosts h WHERE h.clinic_id = k.id)
         ORDER BY k.id LIMIT 1",
        &[clinic.into()],
    )?;
    if let Some(r) = stranded.first() {
        let name = r.text(0).filter(|n| !n.is_empty()).map_or_else(
            || format!("Clinic {}", r.int(1).unwrap_or_default()),
            str::to_string,
        );
        return Err(ApiError::invalid(
            "hosts",
            format!(
                "Give {name} its host names first: once any host name is mapped, a clinic without one cannot be reached."
            ),
        ));
    }
    for host in hosts {
        let taken = db.execute(
            "SELECT clinic_id FROM clinic_hosts WHERE host = ? AND clinic_id != ?",
            &[host.as_str().into(), clinic.into()],
        )?;
        if taken.first().is_some() {
            return Err(ApiError::new(
                Code::HostInUse,
                format!("{host} is already another clinic's host name."),
            )
            .at("hosts"));
        }
    }
    db.execute(
        "DELETE FROM clinic_hosts WHERE clinic_id = ?",
        &[clinic.into()],
    )?;
    for host in hosts {
        db.execute(
            "INSERT INTO clinic_hosts (host, clinic_id) VALUES (?, ?)",
            &[host.as_str().into(), clinic.into()],
        )?;
    }
    Ok(())
}

/// The operators' own clinic, for their audit log.
fn operators(db: &dyn Db) -> Scoped<&dyn Db> {
    Scoped::new(db, OPERATORS)
}

/// `POST /api/operator/clinics`: creates a clinic, its host names and its first administrator
/// (who must choose a new password at first sign-in), in one transaction, audited in the
/// operator's log and in the new clinic's.
pub fn create(
    deployment: &Ctx<'_>,
    operator: Account,
    new: &NewClinic,
) -> Result<Created, ApiError> {
    let db = deployment.db;
    let fields = check(&new.fields)?;
    let name = fields
        .name
        .clone()
        .ok_or_else(|| ApiError::invalid("name", "Enter the clinic's name."))?;
    let hosts = fields.hosts.clone().unwrap_or_default();
    if hosts.is_empty() {
        return Err(ApiError::invalid(
            "hosts",
            "Give at least one host name the clinic's staff and clients will use.",
        ));
    }
    let email = Email::parse(&new.admin_email).map_err(|m| ApiError::invalid("admin_email", m))?;
    let admin_name = DisplayName::parse(&new.admin_name).map_err(|e| ApiError {
        field: Some("admin_name".into()),
        ..e
    })?;
    let (temp, phc) = passwords::new_temporary()?;
    let now = deployment.clock.now();
    let expires = now
        .checked_add(jiff::SignedDuration::from_hours(
            fields.numbers[1]
                .flatten()
                .unwrap_or(deployment.settings.temp_password_ttl_hours),
        ))
        .map_err(|_| ApiError::internal())?;
    let id = transaction(db, || {
        let id = db
            .execute(
                "INSERT INTO clinics (name, mail_from, portal_url, time_zone, created_at,
                    password_min_length, temp_password_ttl_hours, session_idle_minutes,
                    session_absolute_hours)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                &[
                    name.as_str().into(),
                    fields.mail_from.clone().flatten().into(),
                    fields.portal_url.clone().flatten().into(),
                    fields.time_zone.clone().flatten().into(),
                    now.to_string().into(),
                    fields.numbers[0].flatten().into(),
                    fields.numbers[1].flatten().into(),
                    fields.numbers[2].flatten().into(),
                    fields.numbers[3].flatten().into(),
                ],
            )?
            .first()
            .and_then(|r| r.int(0))
            .ok_or_else(ApiError::internal)?;
        set_hosts(db, id, &hosts, deployment.settings.operator_host.as_deref())?;
        let clinic = Scoped::new(db, ClinicId(id));
        let admin = clinic
            .execute(
                "INSERT INTO staff (clinic_id, email, display_name, role, created_at)
                 VALUES (?1, ?, ?, 'admin', ?) RETURNING id",
                &[
                    email.as_ref().into(),
                    admin_name.as_ref().into(),
                    now.to_string().into(),
                ],
            )?
            .first()
            .and_then(|r| r.int(0))
            .ok_or_else(ApiError::internal)?;
        let ctx = Ctx {
            db: &clinic,
            ..*deployment
        };
        credentials::create_staff(&ctx, admin, &email, &phc, Some(&expires.to_string()))?;
        let actor = format!("operator:{}", operator.id);
        ctx.audit(
            &actor,
            "clinic_created",
            Some(&format!("staff:{admin}")),
            json!({ "name": name, "hosts": hosts, "first_admin": email.as_ref() }),
        )?;
        audit::record(
            &operators(db),
            deployment.clock,
            &operator.label(),
            "clinic_created",
            Some(&format!("clinic:{id}")),
            json!({ "name": name, "hosts": hosts, "first_admin": email.as_ref() }),
        )?;
        Ok::<_, ApiError>(id)
    })?;
    Ok(Created {
        clinic: one(db, id)?.ok_or_else(ApiError::internal)?,
        admin_username: email.to_string(),
        temporary_password: temp,
        expires_at: expires.to_string(),
    })
}

/// `PATCH /api/operator/clinics/:id`: name, host names and settings; `status` suspends or
/// resumes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    #[serde(flatten)]
    pub fields: ClinicFields,
    pub status: Option<String>,
}

pub fn change(
    deployment: &Ctx<'_>,
    operator: Account,
    id: i64,
    change: &Change,
) -> Result<ClinicView, ApiError> {
    let db = deployment.db;
    let fields = check(&change.fields)?;
    let status = match change.status.as_deref() {
        None => None,
        Some(s @ ("active" | "suspended")) => Some(s),
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "status is active or suspended.",
            ));
        }
    };
    if let Some(hosts) = &fields.hosts
        && hosts.is_empty()
    {
        return Err(ApiError::invalid(
            "hosts",
            "Keep at least one host name: suspend the clinic to close it.",
        ));
    }
    transaction(db, || {
        let before = one(db, id)?.ok_or_else(ApiError::not_found)?;
        let mut changed = serde_json::Map::new();
        let mut set = |column: &str, value: Value, shown: Json| -> Result<(), StorageError> {
            db.execute(
                &format!("UPDATE clinics SET {column} = ? WHERE id = ?"),
                &[value, id.into()],
            )?;
            changed.insert(column.to_string(), shown);
            Ok(())
        };
        if let Some(name) = &fields.name {
            set("name", name.as_str().into(), json!(name))?;
        }
        for (column, value) in [
            ("mail_from", &fields.mail_from),
            ("portal_url", &fields.portal_url),
            ("time_zone", &fields.time_zone),
        ] {
            if let Some(v) = value {
                set(column, v.clone().into(), json!(v))?;
            }
        }
        for (column, value) in clinics::NUMBERS.iter().zip(fields.numbers) {
            if let Some(v) = value {
                set(column, v.into(), json!(v))?;
            }
        }
        if let Some(s) = status {
            set("status", s.into(), json!(s))?;
        }
        if let Some(hosts) = &fields.hosts {
            set_hosts(db, id, hosts, deployment.settings.operator_host.as_deref())?;
            changed.insert("hosts".into(), json!(hosts));
        }
        let action = match status {
            Some("suspended") if before.status != "suspended" => "clinic_suspended",
            Some("active") if before.status != "active" => "clinic_resumed",
            _ => "clinic_changed",
        };
        audit::record(
            &operators(db),
            deployment.clock,
            &operator.label(),
            action,
            Some(&format!("clinic:{id}")),
            Json::Object(changed),
        )?;
        Ok::<_, ApiError>(())
    })?;
    one(db, id)?.ok_or_else(ApiError::not_found)
}

/// Every table with a clinic's data, in the order a deletion empties them (rows that refer to
/// others first). The export reads the readable ones.
const CLINIC_TABLES: [&str; 13] = [
    "usage_events",
    "session_index",
    "one_time_tokens",
    "sign_in_throttle",
    "portal_resets",
    "mail_deliveries",
    "caseload_assignments",
    "credentials",
    "clients",
    "staff",
    "audit_log",
    "clinic_hosts",
    "clinic_deletions",
];

fn rows_as_json(db: &dyn Db, sql: &str) -> Result<Vec<Json>, StorageError> {
    let rows = db.execute(sql, &[])?;
    Ok(rows
        .rows
        .iter()
        .map(|r| {
            Json::Array(
                r.iter()
                    .map(|v| match v {
                        Value::Null => Json::Null,
                        Value::Integer(i) => json!(i),
                        Value::Real(f) => json!(f),
                        Value::Text(t) => json!(t),
                        Value::Blob(_) => Json::Null,
                    })
                    .collect(),
            )
        })
        .collect())
}

/// One table of the archive: its columns and its rows.
fn table(db: &Scoped<&dyn Db>, columns: &str, from: &str) -> Result<Json, StorageError> {
    let rows = rows_as_json(
        db,
        &format!("SELECT {columns} FROM {from} WHERE clinic_id = ?1 ORDER BY 1"),
    )?;
    Ok(json!({
        "columns": columns.split(", ").collect::<Vec<_>>(),
        "rows": rows,
    }))
}

/// `GET /api/operator/clinics/:id/export`: everything of the clinic as one readable JSON
/// document — its settings and host names, staff, clients, caseloads, accounts (usernames,
/// never password hashes), resets, emails sent, usage and its audit log with the result of
/// checking its chain. Audited in the operator's log.
pub fn export(deployment: &Ctx<'_>, operator: Account, id: i64) -> Result<Json, ApiError> {
    let db = deployment.db;
    let clinic = one(db, id)?.ok_or_else(ApiError::not_found)?;
    let scoped = Scoped::new(db, ClinicId(id));
    let verdict = match audit::verify(&scoped)? {
        Verdict::Intact { entries } => json!({ "intact": true, "entries": entries }),
        Verdict::Broken { seq, why } => json!({ "intact": false, "at_seq": seq, "why": why }),
    };
    let archive = json!({
        "format": "caseport-clinic-export/1",
        "exported_at": deployment.clock.now().to_string(),
        "clinic": clinic,
        "staff": table(&scoped, "id, email, display_name, role, status, created_at", "staff")?,
        "clients": table(&scoped, "id, first_name, middle_name, last_name, dob, email, phone, version, created_at", "clients")?,
        "caseload_assignments": table(&scoped, "client_id, staff_id, role, date_assigned", "caseload_assignments")?,
        "accounts": table(&scoped, "owner_kind, owner_id, username, must_change, temp_expires_at, changed_at, last_sign_in_at", "credentials")?,
        "portal_resets": table(&scoped, "id, client_id, requested_by, delivery, status, username, temp_expires_at, created_at", "portal_resets")?,
        "mail_deliveries": table(&scoped, "id, client_id, purpose, provider, to_address, status, detail, events, created_at, updated_at", "mail_deliveries")?,
        "usage_events": table(&scoped, "id, meter, audit_seq, at", "usage_events")?,
        "audit_log": table(&scoped, "seq, at, actor, action, subject, detail, prev_hash, hash", "audit_log")?,
        "audit_check": verdict,
    });
    audit::record(
        &operators(db),
        deployment.clock,
        &operator.label(),
        "clinic_exported",
        Some(&format!("clinic:{id}")),
        json!({ "name": clinic.name }),
    )?;
    Ok(archive)
}

/// `DELETE /api/operator/clinics/:id?confirm=<the clinic's name>`.
#[derive(Debug)]
pub struct Deletion {
    pub confirm: String,
}

impl Deletion {
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let mut confirm = None;
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "confirm" => confirm = Some(value.into_owned()),
                other => {
                    return Err(ApiError::invalid(
                        other,
                        format!("{other} is not a parameter here: confirm."),
                    ));
                }
            }
        }
        Ok(Self {
            confirm: confirm.ok_or_else(|| {
                ApiError::invalid("confirm", "Type the clinic's name exactly to confirm.")
            })?,
        })
    }
}

/// Deletes a suspended clinic for good: every row of it in every table, its sessions in
/// key-value, its audit chain (the operator's log keeps that it was deleted, by whom, and
/// how many entries its chain held). The other clinics are untouched.
pub fn delete(
    deployment: &Ctx<'_>,
    kv: &dyn Kv,
    operator: Account,
    id: i64,
    deletion: &Deletion,
) -> Result<Json, ApiError> {
    let db = deployment.db;
    let clinic = one(db, id)?.ok_or_else(ApiError::not_found)?;
    if clinic.status != "suspended" {
        return Err(ApiError::new(
            Code::Forbidden,
            "Suspend the clinic first (and export it): only a suspended clinic can be deleted.",
        ));
    }
    if deletion.confirm.trim() != clinic.name {
        return Err(ApiError::invalid(
            "confirm",
            "Type the clinic's name exactly to confirm.",
        ));
    }
    let scoped = Scoped::new(db, ClinicId(id));
    let (sessions, counted) = transaction(db, || {
        let sessions = scoped
            .execute(
                "SELECT token_hash FROM session_index WHERE clinic_id = ?1",
                &[],
            )?
            .texts(0);
        let mut counted = serde_json::Map::new();
        scoped.execute("INSERT INTO clinic_deletions (clinic_id) VALUES (?1)", &[])?;
        for table in CLINIC_TABLES {
            let n = scoped
                .execute(
                    &format!("DELETE FROM {table} WHERE clinic_id = ?1 RETURNING 1"),
                    &[],
                )?
                .rows
                .len();
            if table != "clinic_deletions" {
                counted.insert(table.into(), json!(n));
            }
        }
        scoped.execute("DELETE FROM counters WHERE name = 'clients/' || ?1", &[])?;
        db.execute("DELETE FROM clinics WHERE id = ?", &[id.into()])?;
        audit::record(
            &operators(db),
            deployment.clock,
            &operator.label(),
            "clinic_deleted",
            Some(&format!("clinic:{id}")),
            json!({ "name": clinic.name, "deleted": counted }),
        )?;
        Ok::<_, ApiError>((sessions, counted))
    })?;
    // The sessions could not be used any more (their accounts are gone); their keys go too.
    let keys = clinics::ScopedKv::new(kv, ClinicId(id));
    for hash in sessions {
        crate::tokens::forget_session(&keys, &hash)?;
    }
    Ok(json!({ "deleted": clinic.name, "rows": counted }))
}

/// One page of usage as CloudEvents 1.0 (JSON batch format), oldest first, after event
/// `after`; with the id to ask after for the next page when this one is full.
///
/// `id` is the usage row's, so a billing system that keeps `source` + `id` drops a page it
/// is sent twice; `type` is the meter (`org.caseport.usage.<meter>`), `subject` the clinic.
pub fn usage_events(
    db: &dyn Db,
    source: &str,
    after: i64,
    limit: i64,
) -> Result<(Vec<Json>, Option<i64>), StorageError> {
    let rows = db.execute(
        "SELECT u.id, u.clinic_id, u.meter, u.audit_seq, u.at, k.name
         FROM usage_events u LEFT JOIN clinics k ON k.id = u.clinic_id
         WHERE u.id > ? ORDER BY u.id LIMIT ?",
        &[after.into(), limit.into()],
    )?;
    let events: Vec<Json> = rows
        .iter()
        .map(|r| {
            let clinic = r.int(1).unwrap_or_default();
            let meter = r.text(2).unwrap_or_default();
            json!({
                "specversion": "1.0",
                "id": r.int(0).unwrap_or_default().to_string(),
                "source": source,
                "type": format!("org.caseport.usage.{meter}"),
                "subject": format!("clinic/{clinic}"),
                "time": r.text(4),
                "datacontenttype": "application/json",
                "data": {
                    "clinic_id": clinic,
                    "clinic_name": r.text(5),
                    "meter": meter,
                    "value": 1,
                    "audit_seq": r.int(3),
                },
            })
        })
        .collect();
    let next = (events.len() as i64 == limit)
        .then(|| rows.iter().last().and_then(|r| r.int(0)))
        .flatten();
    Ok((events, next))
}

/// Billable calls per clinic, day (UTC) and meter since `since` (a date, `YYYY-MM-DD`), newest
/// day first.
#[derive(Debug, Serialize)]
pub struct UsageDay {
    pub clinic_id: i64,
    pub clinic_name: Option<String>,
    pub day: String,
    pub meter: String,
    pub calls: i64,
}

pub fn usage_summary(db: &dyn Db, since: &str) -> Result<Vec<UsageDay>, StorageError> {
    Ok(db
        .execute(
            "SELECT u.clinic_id, k.name, substr(u.at, 1, 10), u.meter, count(*)
             FROM usage_events u LEFT JOIN clinics k ON k.id = u.clinic_id
             WHERE u.at >= ? GROUP BY u.clinic_id, substr(u.at, 1, 10), u.meter
             ORDER BY 3 DESC, 1, 4",
            &[since.into()],
        )?
        .iter()
        .map(|r| UsageDay {
            clinic_id: r.int(0).unwrap_or_default(),
            clinic_name: r.text(1).map(str::to_string),
            day: r.text(2).unwrap_or_default().to_string(),
            meter: r.text(3).unwrap_or_default().to_string(),
            calls: r.int(4).unwrap_or_default(),
        })
        .collect())
}

/// `GET /api/operator/usage?after=<id>&limit=<n>` and `GET /api/operator/usage/summary?since=`.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageQuery {
    /// Events after this id (0: from the first).
    pub after: i64,
    /// At most this many events (1 to 1,000; 500 unless asked).
    pub limit: i64,
    /// The summary's first day, `YYYY-MM-DD` (31 days before `today` unless asked).
    pub since: String,
}

impl UsageQuery {
    pub fn parse(query: &str, today: jiff::civil::Date) -> Result<Self, ApiError> {
        let mut out = UsageQuery {
            after: 0,
            limit: 500,
            since: today
                .checked_sub(jiff::Span::new().days(31))
                .unwrap_or(today)
                .to_string(),
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let number = |field: &str, min: i64, max: i64| {
                crate::request::whole_number(field, &value, min, max)
            };
            match key.as_ref() {
                "after" => out.after = number("after", 0, i64::MAX)?,
                "limit" => out.limit = number("limit", 1, 1000)?,
                "since" => {
                    let day: jiff::civil::Date = value.parse().map_err(|_| {
                        ApiError::invalid("since", "since is a date such as 2026-11-01.")
                    })?;
                    out.since = day.to_string();
                }
                other => {
                    return Err(ApiError::invalid(
                        other,
                        format!("{other} is not a parameter here: after, limit or since."),
                    ));
                }
            }
        }
        Ok(out)
    }
}
