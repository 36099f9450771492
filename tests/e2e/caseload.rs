//! My Caseload and Client Information through the real `caseload` and `client-info`
//! components, with the help page's demo caseload.

use std::sync::{Arc, Barrier};
use std::thread;

use caseport_shared::ports::Db;
use caseport_tests::demo::{ADMIN, CASEY, ROBIN};
use caseport_tests::{Reply, Server, Staff, Up};
use serde_json::{Value, json};

fn demo() -> Server {
    caseport_tests::demo_app()
}

/// Age on today's UTC date, computed here independently of the code under test.
fn age_today(dob: &str) -> i64 {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let (y, m, d): (i64, i64, i64) = (
        dob[..4].parse().unwrap(),
        dob[5..7].parse().unwrap(),
        dob[8..].parse().unwrap(),
    );
    let (ty, tm, td) = (
        i64::from(today.year()),
        i64::from(today.month()),
        i64::from(today.day()),
    );
    ty - y - i64::from((tm, td) < (m, d))
}

fn names(r: &Reply) -> Vec<String> {
    r.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["name"].as_str().unwrap().to_string())
        .collect()
}

fn id_of(staff: &Staff<'_>, name: &str) -> i64 {
    let all = staff.get("/api/caseload?limit=100");
    all.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .map(|r| r["client_id"].as_i64().unwrap())
        .unwrap()
}

#[test]
fn caseys_caseload_is_the_help_pages_six_rows() {
    let app = demo();
    let casey = Staff::sign_in(&app, CASEY);
    let r = casey.get("/api/caseload");
    assert_eq!(r.status, 200, "{}", r.body);
    let page = r.json();
    assert_eq!(
        (
            page["total"].as_i64(),
            page["offset"].as_i64(),
            page["limit"].as_i64()
        ),
        (Some(6), Some(0), Some(25))
    );
    let expected = [
        (
            "Able, Janet",
            "2015-10-21",
            "Primary Case Manager",
            "2023-10-16",
        ),
        (
            "Albert, Jack",
            "1985-02-12",
            "Primary Case Manager",
            "2023-10-16",
        ),
        (
            "Doe, Jane",
            "2013-02-19",
            "Support Primary Staff",
            "2023-12-04",
        ),
        (
            "Jackson, Fanny",
            "2013-03-15",
            "Primary Case Manager",
            "2023-11-28",
        ),
        (
            "Smith, Mandy",
            "2011-05-01",
            "Primary Case Manager",
            "2023-11-28",
        ),
        (
            "Smith, Mindy",
            "2013-03-03",
            "Primary Case Manager",
            "2023-11-28",
        ),
    ];
    let rows = page["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    for (row, (name, dob, role, date)) in rows.iter().zip(expected) {
        assert_eq!(row["name"], name);
        assert_eq!(row["dob"], dob);
        assert_eq!(row["age"].as_i64(), Some(age_today(dob)), "{name}");
        assert_eq!(row["role_label"], role);
        assert_eq!(row["date_assigned"], date);
    }
    assert_eq!(rows[2]["portal_status"], "active");
    assert_eq!(rows[0]["portal_status"], "none");

    let robin = Staff::sign_in(&app, ROBIN);
    assert_eq!(
        names(&robin.get("/api/caseload")),
        ["Appletop, Allison", "Doe, Jane"]
    );
    let admin = Staff::sign_in(&app, ADMIN);
    let all = admin.get("/api/caseload?scope=all");
    assert_eq!(all.json()["total"], 7);
    // The administrator has no assignment: every row says so.
    assert!(
        all.json()["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["role"].is_null())
    );
}

#[test]
fn search_sort_and_paging_give_the_right_rows_and_totals() {
    let app = demo();
    let casey = Staff::sign_in(&app, CASEY);
    let r = casey.get("/api/caseload?q=smith");
    assert_eq!(
        (r.json()["total"].as_i64(), names(&r)),
        (
            Some(2),
            vec!["Smith, Mandy".to_string(), "Smith, Mindy".to_string()]
        )
    );
    assert_eq!(
        names(&casey.get("/api/caseload?q=Smith%2C+Mi")),
        ["Smith, Mindy"]
    );
    // One word matches the start of either name.
    assert_eq!(
        names(&casey.get("/api/caseload?q=ja")),
        ["Able, Janet", "Albert, Jack", "Doe, Jane", "Jackson, Fanny"]
    );
    assert_eq!(
        casey.get("/api/caseload?q=%25").json()["total"],
        0,
        "a wildcard is no name: it matches nobody"
    );
    assert_eq!(casey.get("/api/caseload?q=nobody").json()["total"], 0);

    assert_eq!(
        names(&casey.get("/api/caseload?sort=dob&limit=2")),
        ["Albert, Jack", "Smith, Mandy"]
    );
    assert_eq!(
        names(&casey.get("/api/caseload?sort=age&dir=desc&limit=1")),
        ["Albert, Jack"]
    );
    assert_eq!(
        names(&casey.get("/api/caseload?sort=age&limit=1")),
        ["Able, Janet"]
    );
    assert_eq!(
        names(&casey.get("/api/caseload?sort=role&dir=desc&limit=1")),
        ["Doe, Jane"]
    );
    assert_eq!(
        names(&casey.get("/api/caseload?sort=date_assigned&dir=desc&limit=1")),
        ["Doe, Jane"]
    );
    assert_eq!(
        names(&casey.get("/api/caseload?sort=name&dir=desc&limit=1")),
        ["Smith, Mindy"]
    );

    let last = casey.get("/api/caseload?limit=4&offset=4");
    assert_eq!(
        (last.json()["total"].as_i64(), names(&last)),
        (
            Some(6),
            vec!["Smith, Mandy".to_string(), "Smith, Mindy".to_string()]
        )
    );
    let beyond = casey.get("/api/caseload?limit=4&offset=40");
    assert_eq!(
        (
            beyond.status,
            beyond.json()["total"].as_i64(),
            names(&beyond).len()
        ),
        (200, Some(6), 0)
    );
}

#[test]
fn other_clients_are_not_found_and_show_all_is_for_administrators() {
    let app = demo();
    let casey = Staff::sign_in(&app, CASEY);
    let admin = Staff::sign_in(&app, ADMIN);
    let allison = admin.get("/api/caseload?scope=all&q=Appletop").json()["rows"][0]["client_id"]
        .as_i64()
        .unwrap();
    let not_hers = casey.get(&format!("/api/clients/{allison}"));
    let missing = casey.get("/api/clients/99999");
    let nonsense = casey.get("/api/clients/abc");
    assert_eq!(not_hers.status, 404);
    assert_eq!(not_hers.body, missing.body);
    assert_eq!(not_hers.body, nonsense.body);
    assert!(!not_hers.body.contains("Appletop"));
    assert_eq!(
        casey.get(&format!("/api/clients/{allison}/history")).body,
        missing.body
    );
    let patch = casey.send(
        "PATCH",
        &format!("/api/clients/{allison}"),
        &json!({ "version": 1, "phone": "555-555-1234" }),
    );
    assert_eq!(patch.body, missing.body);
    assert_eq!(casey.get("/api/caseload?scope=all").status, 403);
    assert!(
        !casey
            .get("/api/caseload?q=Appletop")
            .body
            .contains("Appletop")
    );
    assert_eq!(admin.get(&format!("/api/clients/{allison}")).status, 200);
    // Without a session, nothing.
    assert_eq!(app.get("/api/caseload").status, 401);
    assert_eq!(app.get(&format!("/api/clients/{allison}")).status, 401);
}

#[test]
fn janes_email_is_flagged_corrected_and_the_history_shows_it() {
    let app = demo();
    let casey = Staff::sign_in(&app, CASEY);
    let jane = id_of(&casey, "Doe, Jane");
    let view = casey.get(&format!("/api/clients/{jane}")).json();
    assert_eq!(view["client"]["email"], "jdoe123@hotmail1.cmo");
    assert_eq!(view["email_check"]["ok"], false);
    assert_eq!(view["email_check"]["suggestion"], "jdoe123@hotmail.com");
    assert_eq!(view["portal"]["status"], "active");
    let version = view["client"]["version"].as_i64().unwrap();

    let fixed = casey.send(
        "PATCH",
        &format!("/api/clients/{jane}"),
        &json!({ "version": version, "email": "jdoe123@hotmail.com" }),
    );
    assert_eq!(fixed.status, 200, "{}", fixed.body);
    assert_eq!(fixed.json()["email_check"]["ok"], true);
    assert_eq!(
        fixed.json()["client"]["version"].as_i64(),
        Some(version + 1)
    );

    let history = casey.get(&format!("/api/clients/{jane}/history")).json();
    let entries = history["entries"].as_array().unwrap();
    let change = entries
        .iter()
        .find(|e| e["action"] == "client_updated")
        .unwrap();
    assert_eq!(change["actor"], "Casey Manager");
    assert_eq!(
        change["detail"]["email"],
        json!({ "old": "jdoe123@hotmail1.cmo", "new": "jdoe123@hotmail.com" })
    );
    assert!(entries.iter().any(|e| e["action"] == "client_viewed"));
    assert_eq!(entries[0]["action"], "client_updated", "newest first");
}

#[test]
fn two_edits_from_the_same_version_give_one_200_and_one_409() {
    let app = Arc::new(demo());
    let casey = Staff::sign_in(&app, CASEY);
    let robin = Staff::sign_in(&app, ROBIN);
    let jane = id_of(&casey, "Doe, Jane");
    let version = casey.get(&format!("/api/clients/{jane}")).json()["client"]["version"]
        .as_i64()
        .unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = [
        (casey.cookie.clone(), "555-555-0001"),
        (robin.cookie.clone(), "555-555-0002"),
    ]
    .into_iter()
    .map(|(cookie, phone)| {
        let app = app.clone();
        let barrier = barrier.clone();
        thread::spawn(move || {
            barrier.wait();
            app.call(
                "PATCH",
                &format!("/api/clients/{jane}"),
                Some(&json!({ "version": version, "phone": phone })),
                &[("cookie", &cookie)],
            )
        })
    })
    .collect();
    let mut statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| h.join().unwrap().status)
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    let stale = casey.send(
        "PATCH",
        &format!("/api/clients/{jane}"),
        &json!({ "version": version, "phone": "555-555-0003" }),
    );
    assert_eq!(stale.json()["error"]["code"], "version_conflict");
    let now = casey.get(&format!("/api/clients/{jane}")).json();
    assert_eq!(now["client"]["version"].as_i64(), Some(version + 1));
}

#[test]
fn bad_input_names_the_field_and_writes_nothing() {
    let app = demo();
    let casey = Staff::sign_in(&app, CASEY);
    let jane = id_of(&casey, "Doe, Jane");
    let db = app.db();
    let snapshot = |db: &dyn Db| {
        db.execute("SELECT count(*), group_concat(first_name || last_name || dob || coalesce(email,'') || version) FROM clients", &[])
            .unwrap()
            .first()
            .map(|r| format!("{:?}{:?}", r.int(0), r.text(1)))
            .unwrap()
    };
    let before = snapshot(&db);
    let long = "x".repeat(10_000);
    let cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "POST",
            "/api/clients".into(),
            json!({ "first_name": "A", "last_name": "B", "dob": "2013-02-30" }),
            "dob",
        ),
        (
            "POST",
            "/api/clients".into(),
            json!({ "first_name": "A", "last_name": "B", "dob": "2999-01-01" }),
            "dob",
        ),
        (
            "POST",
            "/api/clients".into(),
            json!({ "first_name": long, "last_name": "B", "dob": "2013-02-19" }),
            "first_name",
        ),
        (
            "POST",
            "/api/clients".into(),
            json!({ "first_name": "A", "last_name": 5, "dob": "2013-02-19" }),
            "last_name",
        ),
        (
            "POST",
            "/api/clients".into(),
            json!({ "first_name": "A", "last_name": "B", "dob": "2013-02-19", "ssn": "1" }),
            "ssn",
        ),
        (
            "POST",
            "/api/clients".into(),
            json!({ "first_name": "A", "last_name": "B", "dob": "2013-02-19", "email": "not-an-email" }),
            "email",
        ),
        (
            "POST",
            "/api/clients".into(),
            json!({ "first_name": "A", "last_name": "B", "dob": "2013-02-19", "phone": "call me" }),
            "phone",
        ),
        (
            "POST",
            "/api/clients".into(),
            json!({ "last_name": "B", "dob": "2013-02-19" }),
            "first_name",
        ),
        (
            "PATCH",
            format!("/api/clients/{jane}"),
            json!({ "version": 1, "dob": "19/02/2013" }),
            "dob",
        ),
        (
            "PATCH",
            format!("/api/clients/{jane}"),
            json!({ "version": 1, "last_name": long }),
            "last_name",
        ),
        (
            "PATCH",
            format!("/api/clients/{jane}"),
            json!({ "version": "1", "phone": "555-555-5555" }),
            "version",
        ),
        (
            "PATCH",
            format!("/api/clients/{jane}"),
            json!({ "version": 1, "nickname": "JJ" }),
            "nickname",
        ),
        (
            "PATCH",
            format!("/api/clients/{jane}"),
            json!({ "version": 1 }),
            "body",
        ),
    ];
    for (method, path, body, field) in cases {
        let r = casey.send(method, &path, &body);
        assert_eq!(r.status, 422, "{method} {path} {body}: {}", r.body);
        assert_eq!(r.json()["error"]["field"], field, "{method} {path} {body}");
    }
    assert_eq!(
        casey.get("/api/caseload?sort=height").json()["error"]["field"],
        "sort"
    );
    assert_eq!(
        casey.get("/api/caseload?limit=1000").json()["error"]["field"],
        "limit"
    );
    assert_eq!(snapshot(&db), before, "a refused request changed a client");
}

#[test]
fn add_client_puts_the_client_on_the_callers_caseload() {
    let app = demo();
    let robin = Staff::sign_in(&app, ROBIN);
    let r = robin.send(
        "POST",
        "/api/clients",
        &json!({ "first_name": "Toby", "middle_name": "Q", "last_name": "Tester", "dob": "2016-06-01", "email": "parent@gmial.com", "phone": "402-555-0199" }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["client"]["id"].as_i64().unwrap();
    let client = r.json()["client"].clone();
    assert_eq!(
        (
            client["first_name"].as_str(),
            client["middle_name"].as_str(),
            client["last_name"].as_str(),
            client["dob"].as_str(),
            client["version"].as_i64()
        ),
        (
            Some("Toby"),
            Some("Q"),
            Some("Tester"),
            Some("2016-06-01"),
            Some(1)
        )
    );
    let row = robin.get("/api/caseload?q=Tester").json()["rows"][0].clone();
    assert_eq!(row["client_id"].as_i64(), Some(id));
    assert_eq!(row["role"], "primary_case_manager");
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    assert_eq!(row["date_assigned"], today.as_str());
    let view = robin.get(&format!("/api/clients/{id}")).json();
    assert_eq!(view["email_check"]["suggestion"], "parent@gmail.com");
    assert_eq!(view["portal"]["status"], "none");
    // Casey does not see Robin's new client.
    let casey = Staff::sign_in(&app, CASEY);
    assert_eq!(casey.get(&format!("/api/clients/{id}")).status, 404);
}

#[test]
fn add_client_names_every_problem_at_once_and_asks_before_a_duplicate() {
    let app = demo();
    let casey = Staff::sign_in(&app, CASEY);
    let count = || casey.get("/api/caseload?scope=mine").json()["total"].as_i64();
    let before = count();
    let empty = casey.send(
        "POST",
        "/api/clients",
        &json!({ "first_name": "", "last_name": " ", "dob": "", "phone": "12" }),
    );
    assert_eq!(empty.status, 422, "{}", empty.body);
    let fields: Vec<String> = empty.json()["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(fields, ["first_name", "last_name", "dob", "phone"]);
    assert_eq!(empty.json()["error"]["field"], "first_name");
    // One problem alone is named as before, without a list.
    let one = casey.send(
        "POST",
        "/api/clients",
        &json!({ "first_name": "A", "last_name": "B", "dob": "" }),
    );
    assert_eq!(one.json()["error"]["field"], "dob");
    assert!(one.json()["error"].get("fields").is_none(), "{}", one.body);

    // The same name, date of birth and email as Jane Doe (any case): asked first.
    let jane = json!({ "first_name": "jane", "last_name": "DOE", "dob": "2013-02-19", "email": "jdoe123@hotmail1.cmo" });
    let asked = casey.send("POST", "/api/clients", &jane);
    assert_eq!(asked.status, 409, "{}", asked.body);
    assert_eq!(asked.json()["error"]["code"], "possible_duplicate");
    assert!(
        asked.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("02/19/2013"),
        "{}",
        asked.body
    );
    assert_eq!(count(), before, "nothing was added");
    // A different email is a different person as far as the check goes.
    let other = casey.send(
        "POST",
        "/api/clients",
        &json!({ "first_name": "Jane", "last_name": "Doe", "dob": "2013-02-19", "email": "other.parent@example.com" }),
    );
    assert_eq!(other.status, 201, "{}", other.body);
    let mut confirmed = jane.clone();
    confirmed["confirm_duplicate"] = json!(true);
    let added = casey.send("POST", "/api/clients", &confirmed);
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(count(), before.map(|n| n + 2));
}

#[test]
fn administrators_manage_staff_and_assignments() {
    let app = demo();
    let casey = Staff::sign_in(&app, CASEY);
    assert_eq!(casey.get("/api/staff").status, 403);
    let admin = Staff::sign_in(&app, ADMIN);
    let list = admin.get("/api/staff").json();
    assert_eq!(list["staff"].as_array().unwrap().len(), 3);

    let added = admin.send("POST", "/api/staff", &json!({ "email": "sam.new@example.org", "display_name": "Sam New", "role": "case_manager" }));
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(added.header("cache-control"), Some("no-store"));
    // The temporary password is emailed (here to the local mailbox), not answered.
    assert_eq!(added.json()["delivery"], "email");
    assert_eq!(added.json()["sent_to"], "s***@example.org");
    assert!(!added.body.contains("temporary_password"));
    let mail = app.get("/dev/mailbox/api/messages").json()["messages"].clone();
    assert_eq!(mail[0]["to"], "sam.new@example.org");
    let text = mail[0]["text"].as_str().unwrap();
    assert!(
        text.contains("/staff/") && text.contains("Hello Sam New"),
        "{text}"
    );
    let temp = caseport_tests::fake_mail::temporary_password_in(text).unwrap();
    let sam_id = added.json()["staff"]["id"].as_i64().unwrap();
    let dup = admin.send(
        "POST",
        "/api/staff",
        &json!({ "email": "SAM.NEW@example.org", "display_name": "Sam Again", "role": "admin" }),
    );
    assert_eq!(dup.status, 409);
    let first = app.post(
        "/api/auth/login",
        &json!({ "realm": "staff", "username": "sam.new@example.org", "password": temp }),
    );
    assert_eq!(first.json()["status"], "password_change_required");
    let token = first.json()["change_token"].as_str().unwrap().to_string();
    let changed = app.post(
        "/api/auth/change-password",
        &json!({ "change_token": token, "new_password": "harbour lights over the bay" }),
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    let sam = Staff {
        app: &app,
        cookie: changed.session_cookie().unwrap(),
    };
    assert_eq!(sam.get("/api/caseload").json()["total"], 0);

    let allison = admin.get("/api/caseload?scope=all&q=Appletop").json()["rows"][0]["client_id"]
        .as_i64()
        .unwrap();
    let assigned = admin.send(
        "POST",
        &format!("/api/clients/{allison}/assignments"),
        &json!({ "staff_id": sam_id, "role": "support_primary_staff" }),
    );
    assert_eq!(assigned.status, 200, "{}", assigned.body);
    let row = sam.get("/api/caseload").json()["rows"][0].clone();
    assert_eq!(
        (row["name"].as_str(), row["role_label"].as_str()),
        (Some("Appletop, Allison"), Some("Support Primary Staff"))
    );
    let bad = admin.send(
        "POST",
        &format!("/api/clients/{allison}/assignments"),
        &json!({ "staff_id": sam_id, "role": "boss" }),
    );
    assert_eq!(bad.json()["error"]["field"], "role");
    assert_eq!(
        casey
            .send(
                "POST",
                &format!("/api/clients/{allison}/assignments"),
                &json!({ "staff_id": 1, "role": "support_primary_staff" })
            )
            .status,
        403
    );
}

#[test]
fn every_view_and_change_is_audited() {
    let app = demo();
    let casey = Staff::sign_in(&app, CASEY);
    let jane = id_of(&casey, "Doe, Jane");
    casey.get(&format!("/api/clients/{jane}"));
    casey.send(
        "PATCH",
        &format!("/api/clients/{jane}"),
        &json!({ "version": 1, "phone": "555-555-7777" }),
    );
    casey.send(
        "POST",
        "/api/clients",
        &json!({ "first_name": "New", "last_name": "Client", "dob": "2010-01-01" }),
    );
    let db = app.db();
    let actions: Vec<String> = db
        .execute(
            "SELECT action || ' by ' || actor FROM audit_log WHERE actor = 'staff:1' ORDER BY seq",
            &[],
        )
        .unwrap()
        .texts(0);
    for expected in [
        "client_viewed by staff:1",
        "client_updated by staff:1",
        "client_added by staff:1",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} not in {actions:?}"
        );
    }
    assert!(matches!(
        caseport_shared::audit::verify_all(&db).unwrap(),
        caseport_shared::audit::Verdict::Intact { .. }
    ));
}

#[test]
fn a_clinic_time_zone_is_accepted_and_a_wrong_one_is_named() {
    let app = Up::caseport()
        .variable("demo_data", "true")
        .variable("clinic_timezone", "America/Chicago")
        .start()
        .unwrap();
    let casey = Staff::sign_in(&app, CASEY);
    assert_eq!(casey.get("/api/caseload").json()["total"], 6);
    let wrong = Up::caseport()
        .variable("demo_data", "true")
        .variable("clinic_timezone", "Mars/Olympus")
        .start()
        .unwrap();
    // A wrong setting fails loudly everywhere, sign-in included, rather than guessing.
    let r = wrong.post(
        "/api/auth/login",
        &json!({ "realm": "staff", "username": CASEY.0, "password": CASEY.1 }),
    );
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (500, Some("misconfigured"))
    );
    assert!(
        !r.body.contains("Mars"),
        "the operator's log names it, not the client"
    );
    assert!(wrong.wait_for_output("clinic_timezone"));
}

#[test]
fn next_cursors_page_through_show_all_clients() {
    let app = demo();
    let admin = Staff::sign_in(&app, ADMIN);
    let mut seen = Vec::new();
    let mut path = "/api/caseload?scope=all&limit=3".to_string();
    loop {
        let page = admin.get(&path).json();
        assert_eq!(page["total"], 7);
        seen.extend(
            page["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_string()),
        );
        match page["next"].as_str() {
            Some(next) => {
                path = format!(
                    "/api/caseload?scope=all&limit=3&offset={}&after={next}",
                    seen.len()
                )
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(seen.first().map(String::as_str), Some("Able, Janet"));
    assert_eq!(seen.last().map(String::as_str), Some("Smith, Mindy"));
    let bad = admin.get("/api/caseload?scope=all&after=garbage");
    assert_eq!(
        (bad.status, bad.json()["error"]["field"].as_str()),
        (422, Some("after"))
    );
}
