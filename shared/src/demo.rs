//! The demo caseload of the AccuCare help page, loaded into an empty database only when the
//! operator sets `demo_data = "true"` (the README's local run command does; nothing else).

use serde_json::json;

use crate::audit;
use crate::clinics::{ClinicId, FIRST, OPERATORS, Scoped};
use crate::passwords;
use crate::ports::{Clock, Db, StorageError, random_bytes, transaction};

struct DemoStaff {
    email: &'static str,
    name: &'static str,
    role: &'static str,
    password: &'static str,
}

const STAFF: &[DemoStaff] = &[
    DemoStaff {
        email: "casey.manager@example.org",
        name: "Casey Manager",
        role: "case_manager",
        password: "caseport-demo-manager",
    },
    DemoStaff {
        email: "robin.support@example.org",
        name: "Robin Support",
        role: "case_manager",
        password: "caseport-demo-support",
    },
    DemoStaff {
        email: "admin@example.org",
        name: "Avery Admin",
        role: "admin",
        password: "caseport-demo-admin",
    },
];

/// (first, last, dob, email, phone)
const CLIENTS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "Jane",
        "Doe",
        "2013-02-19",
        "jdoe123@hotmail1.cmo",
        "555-555-5555",
    ),
    (
        "Fanny",
        "Jackson",
        "2013-03-15",
        "fanny.jackson@example.com",
        "555-555-0101",
    ),
    (
        "Mandy",
        "Smith",
        "2011-05-01",
        "mandy.smith@example.com",
        "555-555-0102",
    ),
    (
        "Mindy",
        "Smith",
        "2013-03-03",
        "mindy.smith@example.com",
        "555-555-0103",
    ),
    (
        "Janet",
        "Able",
        "2015-10-21",
        "janet.able@example.com",
        "555-555-0104",
    ),
    (
        "Jack",
        "Albert",
        "1985-02-12",
        "jack.albert@example.com",
        "555-555-0105",
    ),
    (
        "Allison",
        "Appletop",
        "2000-02-23",
        "aappletop@hotmail.org",
        "402-433-5567",
    ),
];

/// (staff email, client last, client first, role, date assigned), as on the help page.
const ASSIGNMENTS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "casey.manager@example.org",
        "Doe",
        "Jane",
        "support_primary_staff",
        "2023-12-04",
    ),
    (
        "casey.manager@example.org",
        "Jackson",
        "Fanny",
        "primary_case_manager",
        "2023-11-28",
    ),
    (
        "casey.manager@example.org",
        "Smith",
        "Mandy",
        "primary_case_manager",
        "2023-11-28",
    ),
    (
        "casey.manager@example.org",
        "Smith",
        "Mindy",
        "primary_case_manager",
        "2023-11-28",
    ),
    (
        "casey.manager@example.org",
        "Able",
        "Janet",
        "primary_case_manager",
        "2023-10-16",
    ),
    (
        "casey.manager@example.org",
        "Albert",
        "Jack",
        "primary_case_manager",
        "2023-10-16",
    ),
    (
        "robin.support@example.org",
        "Doe",
        "Jane",
        "primary_case_manager",
        "2023-12-04",
    ),
    (
        "robin.support@example.org",
        "Appletop",
        "Allison",
        "primary_case_manager",
        "2023-11-01",
    ),
];

/// The second demo clinic: its own name, sender and portal address, on its own host name.
pub const SOUTH: ClinicId = ClinicId(2);
const SOUTH_NAME: &str = "South Clinic (demo)";
const SOUTH_FROM: &str = "South Clinic <portal@south.localhost>";
const SOUTH_PORTAL: &str = "http://south.localhost:3000";

/// Host names of the local run: clinic 1 on the loopback names it always had and on
/// `north.localhost`, the South clinic on `south.localhost` (browsers resolve every
/// `*.localhost` name to this computer).
pub const HOSTS: &[(&str, ClinicId)] = &[
    ("localhost", FIRST),
    ("127.0.0.1", FIRST),
    ("[::1]", FIRST),
    ("north.localhost", FIRST),
    ("south.localhost", SOUTH),
    ("operator.localhost", OPERATORS),
];

/// The demo's operator: an administrator of the operators' clinic, on `operator.localhost`.
pub const OPERATOR: (&str, &str, &str) = (
    "operator@example.org",
    "Olive Operator",
    "caseport-demo-operator",
);

/// Loads the demo data if the database has no staff yet; safe under concurrent requests.
/// Two clinics hold the same caseload under the same sign-in names, each its own copy: what
/// one clinic's staff do is never seen by the other's.
pub fn load_if_empty(db: &dyn Db, clock: &dyn Clock) -> Result<bool, StorageError> {
    let empty = || -> Result<bool, StorageError> {
        Ok(db
            .execute("SELECT 1 FROM staff LIMIT 1", &[])?
            .first()
            .is_none())
    };
    if !empty()? {
        return Ok(false);
    }
    // Hash outside the write lock: argon2 takes a while.
    let hashes = STAFF
        .iter()
        .map(|s| passwords::hash(s.password))
        .collect::<Result<Vec<_>, _>>()?;
    let operator_phc = passwords::hash(OPERATOR.2)?;
    // Jane Doe's portal password is one nobody knows: the seed's support call.
    let unknown = passwords::hash(&format!("{:x}", u128::from_le_bytes(random_bytes::<16>()?)))?;
    let now = clock.now().to_string();
    transaction(db, || {
        if !empty()? {
            return Ok(false);
        }
        db.execute(
            "INSERT INTO clinics (id, name, mail_from, portal_url, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (id) DO NOTHING",
            &[SOUTH.0.into(), SOUTH_NAME.into(), SOUTH_FROM.into(), SOUTH_PORTAL.into(), now.as_str().into()],
        )?;
        for (host, clinic) in HOSTS {
            db.execute(
                "INSERT INTO clinic_hosts (host, clinic_id) VALUES (?, ?) ON CONFLICT (host) DO NOTHING",
                &[(*host).into(), clinic.0.into()],
            )?;
        }
        for clinic in [FIRST, SOUTH] {
            load_clinic(&Scoped::new(db, clinic), clock, &hashes, &unknown, &now)?;
        }
        let operators = Scoped::new(db, OPERATORS);
        let id = operators
            .execute(
                "INSERT INTO staff (clinic_id, email, display_name, role, created_at) VALUES (?1, ?, ?, 'admin', ?) RETURNING id",
                &[OPERATOR.0.into(), OPERATOR.1.into(), now.as_str().into()],
            )?
            .first()
            .and_then(|r| r.int(0))
            .ok_or_else(|| StorageError::new("staff insert returned no id"))?;
        operators.execute(
            "INSERT INTO credentials (clinic_id, owner_kind, owner_id, username, phc, changed_at) VALUES (?1, 'staff', ?, ?, ?, ?)",
            &[id.into(), OPERATOR.0.into(), operator_phc.as_str().into(), now.as_str().into()],
        )?;
        Ok(true)
    })
}

/// The seeds' staff, clients and caseloads, in one clinic.
fn load_clinic(
    db: &dyn Db,
    clock: &dyn Clock,
    hashes: &[String],
    unknown: &str,
    now: &str,
) -> Result<(), StorageError> {
    for (s, phc) in STAFF.iter().zip(hashes) {
        let id = db
            .execute(
                "INSERT INTO staff (clinic_id, email, display_name, role, created_at) VALUES (?1, ?, ?, ?, ?) RETURNING id",
                &[s.email.into(), s.name.into(), s.role.into(), now.into()],
            )?
            .first()
            .and_then(|r| r.int(0))
            .ok_or_else(|| StorageError::new("staff insert returned no id"))?;
        db.execute(
            "INSERT INTO credentials (clinic_id, owner_kind, owner_id, username, phc, changed_at) VALUES (?1, 'staff', ?, ?, ?, ?)",
            &[id.into(), s.email.into(), phc.as_str().into(), now.into()],
        )?;
    }
    for (first, last, dob, email, phone) in CLIENTS {
        let keys = crate::names::Keys::of(first, "", last);
        let id = db
            .execute(
                "INSERT INTO clients (clinic_id, first_name, last_name, last_key, first_key, name_words, dob, email, phone, created_at) VALUES (?1, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                &[(*first).into(), (*last).into(), keys.last.into(), keys.first.into(), keys.words.into(), (*dob).into(), (*email).into(), (*phone).into(), now.into()],
            )?
            .first()
            .and_then(|r| r.int(0))
            .ok_or_else(|| StorageError::new("client insert returned no id"))?;
        if *last == "Doe" {
            db.execute(
                "INSERT INTO credentials (clinic_id, owner_kind, owner_id, username, phc, changed_at) VALUES (?1, 'client', ?, ?, ?, ?)",
                &[id.into(), (*email).into(), unknown.into(), now.into()],
            )?;
        }
    }
    for (staff, last, first, role, date) in ASSIGNMENTS {
        db.execute(
            "INSERT INTO caseload_assignments (clinic_id, staff_id, client_id, role, date_assigned)
             SELECT ?1, s.id, c.id, ?, ? FROM staff s, clients c
             WHERE s.clinic_id = ?1 AND c.clinic_id = ?1 AND s.email = ? AND c.last_name = ? AND c.first_name = ?",
            &[(*role).into(), (*date).into(), (*staff).into(), (*last).into(), (*first).into()],
        )?;
    }
    audit::record(
        db,
        clock,
        "system",
        "demo_data_loaded",
        None,
        json!({ "staff": STAFF.len(), "clients": CLIENTS.len() }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::NativeDb;
    use crate::ports::SystemClock;
    use crate::schema::migrate;

    #[test]
    fn demo_data_loads_once_with_the_seeds_caseload() {
        let db = NativeDb::in_memory().unwrap();
        migrate(&db).unwrap();
        assert!(load_if_empty(&db, &SystemClock).unwrap());
        assert!(!load_if_empty(&db, &SystemClock).unwrap());
        let count = |sql: &str| {
            db.execute(sql, &[])
                .unwrap()
                .first()
                .and_then(|r| r.int(0))
                .unwrap()
        };
        assert_eq!(count("SELECT count(*) FROM staff"), 7);
        assert_eq!(
            count("SELECT count(*) FROM staff WHERE clinic_id = 0 AND role = 'admin'"),
            1
        );
        assert_eq!(count("SELECT count(*) FROM clients"), 14);
        // Each clinic has its own copy, joined only within itself.
        for clinic in [1, 2] {
            assert_eq!(
                count(&format!(
                    "SELECT count(*) FROM staff WHERE clinic_id = {clinic}"
                )),
                3
            );
            assert_eq!(
                count(&format!(
                    "SELECT count(*) FROM clients WHERE clinic_id = {clinic}"
                )),
                7
            );
            assert_eq!(
                count(&format!(
                    "SELECT value FROM counters WHERE name = 'clients/{clinic}'"
                )),
                7
            );
        }
        assert_eq!(
            count(
                "SELECT count(*) FROM caseload_assignments a JOIN staff s ON s.id = a.staff_id JOIN clients c ON c.id = a.client_id WHERE s.clinic_id != c.clinic_id OR a.clinic_id != c.clinic_id"
            ),
            0
        );
        assert_eq!(
            count("SELECT count(*) FROM clinic_hosts WHERE clinic_id = 2"),
            1
        );
        assert_eq!(
            count(
                "SELECT count(*) FROM caseload_assignments a JOIN staff s ON s.id = a.staff_id WHERE s.email = 'casey.manager@example.org'"
            ),
            12
        );
        assert_eq!(
            count(
                "SELECT count(*) FROM caseload_assignments a JOIN staff s ON s.id = a.staff_id WHERE s.email = 'robin.support@example.org'"
            ),
            4
        );
        assert_eq!(
            count("SELECT count(*) FROM credentials WHERE owner_kind = 'client'"),
            2
        );
        let jane = db
            .execute(
                "SELECT email FROM clients WHERE last_name = 'Doe' AND clinic_id = 2",
                &[],
            )
            .unwrap();
        assert_eq!(
            jane.first()
                .and_then(|r| r.text(0).map(str::to_string))
                .as_deref(),
            Some("jdoe123@hotmail1.cmo")
        );
    }
}
