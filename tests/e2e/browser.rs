//! The staff console and the client portal in a real browser: Debian's chromium driven through
//! chromium-driver (WebDriver), against `caseport up` with the demo data and the local mailbox.
//! Screenshots land in `target/screenshots/`. These tests never skip: without chromium they
//! fail and say what to install.

use caseport_tests::demo::{ADMIN, CASEY};
use caseport_tests::fake_mail::temporary_password_in;
use caseport_tests::webdriver::{Browser, keys};
use caseport_tests::{Server, Staff};
use serde_json::{Value, json};

fn demo() -> Server {
    caseport_tests::demo_app()
}

fn client_id(app: &Server, first: &str) -> i64 {
    app.client_id(first)
}

fn mailbox(app: &Server) -> Vec<Value> {
    app.get("/dev/mailbox/api/messages").json()["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// An administrator sets Fanny's portal password (not one to change), so she can forget it.
fn give_fanny_a_password(app: &Server) {
    let fanny = client_id(app, "Fanny");
    let set = Staff::sign_in(app, ADMIN).send(
        "PUT",
        &format!("/api/clients/{fanny}/portal-password"),
        &json!({ "password": "copper kettle evening song", "password_confirm": "copper kettle evening song", "reset_required": false }),
    );
    assert_eq!(set.status, 200, "{}", set.body);
}

/// Fanny, with a password of her own, asks for a reset link at the portal's sign-in page (the
/// API call the page makes, not signed in).
fn fanny_forgets_her_password(app: &Server) {
    give_fanny_a_password(app);
    let asked = app.post(
        "/api/auth/forgot",
        &json!({ "email": "fanny.jackson@example.com" }),
    );
    assert_eq!(asked.status, 202, "{}", asked.body);
}

/// The captured mail, once there is some (reset links are sent just after the answer).
fn first_mail(app: &Server) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut mail = mailbox(app);
    while mail.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(25));
        mail = mailbox(app);
    }
    mail
}

/// Casey adds a client through the API (`body` is Add Client's); answers the new client.
fn casey_adds(app: &Server, body: &Value) -> Value {
    let added = Staff::sign_in(app, CASEY).send("POST", "/api/clients", body);
    assert_eq!(added.status, 201, "{}", added.body);
    added.json()["client"].clone()
}

/// Signs `who` in on the staff sign-in page.
fn staff_sign_in(app: &Server, b: &Browser, who: (&str, &str)) {
    staff_sign_in_at(&app.url(""), b, who);
}

/// Signs `who` in to the staff console at `base` (a server's address under one host name).
fn staff_sign_in_at(base: &str, b: &Browser, who: (&str, &str)) {
    b.goto(&format!("{base}/staff/"));
    b.fill("input[name=username]", who.0);
    b.fill("input[name=password]", who.1);
    b.click_text("button", "Sign in");
}

const SEED_ROWS: [&str; 6] = [
    "Doe, Jane",
    "Jackson, Fanny",
    "Smith, Mandy",
    "Smith, Mindy",
    "Able, Janet",
    "Albert, Jack",
];

/// Casey's part of scenario 1 by mouse, up to the answer of Reset and Send New.
fn casey_resets_jane(app: &Server, b: &Browser, shots: &str) {
    casey_resets_jane_at(&app.url(""), b, shots);
}

/// The help page's scenario one up to the sent email, at `base`.
fn casey_resets_jane_at(base: &str, b: &Browser, shots: &str) {
    staff_sign_in_at(base, b, CASEY);
    b.wait_text("Showing 1 to 6 of 6 rows");
    let table = b.text(&b.find("table.caseload"));
    for name in SEED_ROWS {
        assert!(table.contains(name), "{name} missing from:\n{table}");
    }
    b.screenshot(&format!("{shots}-1-my-caseload"));
    b.click_text("button.name", "Doe, Jane");
    b.wait_text("Selected Client: Doe, Jane");
    b.wait_text("DOB: 02/19/2013");
    b.wait_text("Check this email address.");
    b.screenshot(&format!("{shots}-2-email-warning"));
    b.click_text("button", "Use jdoe123@hotmail.com");
    b.wait_text("Email: jdoe123@hotmail.com");
    assert!(!b.body_text().contains("Check this email address."));
    b.click_text(".strip a", "Client Information");
    b.wait_text("Client details");
    b.click_text("button", "Reset and Send New");
    b.wait_text("You are about to reset the Client's password automatically, and email the new password to the Client.");
    b.wait_text("Would you like to proceed?");
    b.screenshot(&format!("{shots}-3-confirm"));
    b.click_text("dialog button", "Yes, reset and send");
    b.wait_text("A new temporary password was emailed to j***@hotmail.com");
    b.wait_text("Email status: Delivered");
    b.screenshot(&format!("{shots}-4-sent"));
}

/// The temporary password in the newest captured email to `to`.
fn emailed_password(app: &Server, to: &str) -> String {
    let mail = mailbox(app);
    let message = mail
        .iter()
        .find(|m| m["to"] == to)
        .unwrap_or_else(|| panic!("no mail to {to}: {mail:?}"));
    temporary_password_in(message["text"].as_str().unwrap()).unwrap()
}

/// Jane signs in to the portal at `base` with the emailed `temporary` password, must choose
/// `new` (the live hint shown on the way), sees her home page and signs out.
fn jane_chooses_her_password(base: &str, b: &Browser, temporary: &str, new: &str, shots: &str) {
    b.goto(&format!("{base}/portal/"));
    b.fill("input[name=username]", "jdoe123@hotmail.com");
    b.fill("input[name=password]", temporary);
    b.click_text("button", "Sign in");
    b.wait_text("Choose your new password");
    b.fill("input[name=new_password]", "short");
    b.wait_text("(5 so far)");
    b.fill("input[name=new_password]", new);
    b.fill("input[name=new_password_again]", new);
    b.wait_text("✓ Both entries match");
    b.screenshot(&format!("{shots}-6-portal-change"));
    b.click_text("button", "Save my new password");
    b.wait_text("Welcome, Jane Doe");
    b.wait_text("02/19/2013");
    b.screenshot(&format!("{shots}-7-portal-home"));
    b.click_text("button", "Sign out");
    b.wait_text("You are signed out.");
}

#[test]
fn the_seeds_scenario_runs_in_each_demo_clinic_and_stays_in_it() {
    let app = demo();
    let b = Browser::start(1280, 900).unwrap();
    for (host, password) in [
        ("north.localhost", "lantern river quiet meadow"),
        ("south.localhost", "copper kettle autumn harbor"),
    ] {
        let base = app.url_at(host, "");
        casey_resets_jane_at(&base, &b, &format!("clinic-{host}"));
        let temporary = emailed_password(&app, "jdoe123@hotmail.com");
        jane_chooses_her_password(&base, &b, &temporary, password, &format!("clinic-{host}"));
    }
    // Each clinic's Jane has the password she chose there, and only there.
    let sign_in = |host: &str, password: &str| {
        app.call(
            "POST",
            "/api/auth/login",
            Some(&serde_json::json!({ "realm": "portal", "username": "jdoe123@hotmail.com", "password": password })),
            &[("host", &format!("{host}:{}", app.port()))],
        )
        .status
    };
    assert_eq!(
        sign_in("north.localhost", "lantern river quiet meadow"),
        200
    );
    assert_eq!(
        sign_in("south.localhost", "copper kettle autumn harbor"),
        200
    );
    assert_eq!(
        sign_in("south.localhost", "lantern river quiet meadow"),
        401
    );
    assert_eq!(
        sign_in("north.localhost", "copper kettle autumn harbor"),
        401
    );
    b.assert_clean_console();
}

#[test]
fn scenario_one_in_the_browser() {
    let app = demo();
    let b = Browser::start(1280, 900).unwrap();
    casey_resets_jane(&app, &b, "scenario1");

    // The mailbox page shows the email.
    b.goto(&app.url("/dev/mailbox"));
    b.wait_text("Local only.");
    b.wait_text("jdoe123@hotmail.com");
    b.wait_text("Temporary password:");
    b.screenshot("scenario1-5-mailbox");
    let temporary = emailed_password(&app, "jdoe123@hotmail.com");

    // Jane, in the portal: the temporary password, the forced change, her home page.
    jane_chooses_her_password(
        &app.url(""),
        &b,
        &temporary,
        "lantern river quiet meadow",
        "scenario1",
    );
    // The temporary password no longer works.
    b.fill("input[name=username]", "jdoe123@hotmail.com");
    b.fill("input[name=password]", &temporary);
    b.click_text("button", "Sign in");
    b.wait_text("The username or password is not right.");
    b.assert_clean_console();
}

#[test]
fn scenario_two_forgot_password_through_the_emailed_link() {
    let app = demo();
    give_fanny_a_password(&app);

    let b = Browser::start(1280, 900).unwrap();
    b.goto(&app.url("/portal/"));
    b.click_text("a", "Forgot your password?");
    b.wait_text("Enter the email address you use for the portal.");
    b.fill("input[name=email]", "fanny.jackson@example.com");
    b.click_text("button", "Email me a link");
    b.wait_text("a link to choose a new password is on its way");
    b.screenshot("scenario2-1-forgot");
    let mail = first_mail(&app);
    assert_eq!(mail.len(), 1, "{mail:?}");
    let text = mail[0]["text"].as_str().unwrap();
    let link = text.lines().find(|l| l.contains("#token=")).unwrap().trim();
    // The local run puts its own address in the link (portal_url is not set here).
    assert!(
        link.starts_with(&app.url("/portal/reset.html#token=")),
        "{link} is not on {}",
        app.url("/")
    );
    b.goto(link);
    b.wait_text("Choose a new password");
    assert!(
        !b.execute("return location.href", &[])
            .as_str()
            .unwrap()
            .contains("token"),
        "the token left the address bar"
    );
    b.fill("input[name=new_password]", "silver orchard morning bell");
    b.fill(
        "input[name=new_password_again]",
        "silver orchard morning bell",
    );
    b.screenshot("scenario2-2-new-password");
    b.click_text("button", "Save my new password");
    b.wait_text("Welcome, Fanny Jackson");
    b.assert_clean_console();
    // The old password stopped working when the link was used.
    let old = app.post(
        "/api/auth/login",
        &json!({ "realm": "portal", "username": "fanny.jackson@example.com", "password": "copper kettle evening song" }),
    );
    assert_eq!(old.status, 401);
}

#[test]
fn the_office_practicum_ways_show_once_and_set_password() {
    let app = demo();
    let allison = client_id(&app, "Allison");
    let fanny = client_id(&app, "Fanny");
    let b = Browser::start(1280, 900).unwrap();
    staff_sign_in(&app, &b, ADMIN);
    // Administrators land on every client (their own caseload is empty), and add one.
    b.wait_text("Showing");
    b.find_text("h1", "All Clients");
    b.wait_text("Appletop, Allison");
    b.click_text("button", "Add Client");
    b.fill("input[name=first_name]", "Nora");
    b.fill("input[name=last_name]", "Newkid");
    b.fill("input[name=email]", "nora.parent@example.com");
    b.click_text("form button[type=submit]", "Add Client");
    b.wait_text("Date of Birth");
    b.wait_text("Enter the date of birth");
    b.execute(
        "document.querySelector('input[name=dob]').value = '2016-04-09'",
        &[],
    );
    b.click_text("form button[type=submit]", "Add Client");
    b.wait_text("Selected Client: Newkid, Nora");
    b.wait_text("Email: nora.parent@example.com");

    // Show once: the password appears in the dialog, and nowhere after it closes.
    b.goto(&app.url(&format!("/staff/#/client/{allison}")));
    b.wait_text("Client details");
    b.click_text("summary", "Other ways");
    b.click_text("button", "Show a temporary password once");
    b.wait_text("No email is sent");
    b.click_text("dialog button", "Yes, show it once");
    let shown = b.find("#shown-password");
    let password = b.text(&shown);
    assert_eq!(password.len(), 20, "{password}");
    b.screenshot("op-1-shown-once");
    b.click_text("dialog button", "I have passed it on");
    b.wait_text("shown once on screen");
    assert!(!b.body_text().contains(&password));
    assert!(mailbox(&app).is_empty(), "nothing is emailed");
    let first = app.post(
        "/api/auth/login",
        &json!({ "realm": "portal", "username": "aappletop@hotmail.org", "password": password }),
    );
    assert_eq!(
        first.json()["status"],
        "password_change_required",
        "{}",
        first.body
    );

    // Set password, typed twice, with Password Reset Required.
    b.goto(&app.url(&format!("/staff/#/client/{fanny}")));
    b.wait_text("Client details");
    b.click_text("summary", "Other ways");
    b.fill("input[name=password]", "a long enough passphrase");
    b.fill("input[name=password_confirm]", "a different passphrase");
    b.click_text("button", "Set password");
    b.wait_text("The two passwords are not the same.");
    b.fill("input[name=password_confirm]", "a long enough passphrase");
    let required = b.find("#reset-required");
    assert_eq!(b.attribute(&required, "checked").as_deref(), Some("true"));
    b.screenshot("op-2-set-password");
    b.click_text("button", "Set password");
    b.wait_text("Password set.");
    b.wait_text("The client must choose a new password at the next sign-in.");
    b.wait_text("Password Reset Required");
    b.goto(&app.url("/staff/#/staff"));
    b.wait_text("Add a staff member");
    b.wait_text("casey.manager@example.org");
    b.fill("input[name=email]", "sam.new@example.org");
    b.fill("input[name=display_name]", "Sam New");
    b.click_text("button", "Add staff member");
    b.wait_text("Sam New's temporary password was emailed to s***@example.org");
    b.screenshot("op-3-staff");
    // The session ends elsewhere (here: signed out by another tab): the next call brings
    // the sign-in form back instead of a dead page.
    let status = b.execute(
        "return fetch('/api/auth/logout', { method: 'POST' }).then((r) => r.status)",
        &[],
    );
    assert_eq!(status, 204);
    b.click_text("nav a", "Clients");
    b.wait_text("Staff sign-in");
    b.find("input[name=username]");
    b.assert_clean_console();
    let signed = app.post(
        "/api/auth/login",
        &json!({ "realm": "portal", "username": "fanny.jackson@example.com", "password": "a long enough passphrase" }),
    );
    assert_eq!(signed.json()["status"], "password_change_required");
}

#[test]
fn scenario_one_by_keyboard_alone() {
    let app = demo();
    let b = Browser::start(1280, 900).unwrap();
    b.goto(&app.url("/staff/"));
    b.find("input[name=username]");
    b.tab_to("Email");
    b.press(CASEY.0);
    b.press(keys::TAB);
    b.press(CASEY.1);
    b.press(keys::ENTER);
    b.wait_text("Showing 1 to 6 of 6 rows");
    b.enter_on("Doe, Jane");
    b.wait_text("Check this email address.");
    b.enter_on("Use jdoe123@hotmail.com");
    b.wait_text("Email: jdoe123@hotmail.com");
    b.enter_on("Client Information");
    b.wait_text("Client details");
    b.enter_on("Reset and Send New");
    b.wait_text("Would you like to proceed?");
    // The confirmation opens on Cancel: an Enter pressed twice answers no.
    b.press(keys::ENTER);
    b.wait_text("Reset and Send New");
    assert_eq!(
        b.execute("return document.getElementById('dialog').open", &[]),
        json!(false)
    );
    assert!(mailbox(&app).is_empty());
    // Yes is a deliberate move to it.
    b.enter_on("Reset and Send New");
    b.find_enabled("dialog button", "Yes, reset and send");
    b.enter_on("Yes, reset and send");
    b.wait_text("A new temporary password was emailed to j***@hotmail.com");
    b.screenshot("keyboard-1-sent");
    let temporary = emailed_password(&app, "jdoe123@hotmail.com");

    b.goto(&app.url("/portal/"));
    b.find("input[name=username]");
    b.tab_to("Email or username");
    b.press("jdoe123@hotmail.com");
    b.press(keys::TAB);
    b.press(&temporary);
    b.press(keys::ENTER);
    b.wait_text("Choose your new password");
    b.tab_to("New password");
    b.press("lantern river quiet meadow");
    b.tab_to("New password again");
    b.press("lantern river quiet meadow");
    b.press(keys::ENTER);
    b.wait_text("Welcome, Jane Doe");
    b.assert_clean_console();
}

/// Signs Casey in and opens Jane Doe's Client Information.
/// A 1280-pixel browser where Casey has signed in and sees her six clients.
fn casey_on_her_caseload(app: &Server) -> Browser {
    let b = Browser::start(1280, 900).unwrap();
    staff_sign_in(app, &b, CASEY);
    b.wait_text("Showing 1 to 6 of 6 rows");
    b
}

fn casey_opens_jane(app: &Server, b: &Browser) {
    staff_sign_in(app, b, CASEY);
    b.wait_text("Showing 1 to 6 of 6 rows");
    b.click_text("button.name", "Doe, Jane");
    b.wait_text("Selected Client: Doe, Jane");
    b.click_text(".strip a", "Client Information");
    b.wait_text("Client details");
}

#[test]
fn a_double_click_on_reset_and_send_new_does_not_answer_the_alert() {
    let app = demo();
    let b = Browser::start(1280, 900).unwrap();
    casey_opens_jane(&app, &b);
    b.click_text("button", "Use jdoe123@hotmail.com");
    b.wait_text("Email: jdoe123@hotmail.com");
    // Whatever lies under the pointer when the Alert opens: a click on Yes at once (here the
    // page's own, in the same moment) does not answer it, and the focus is on Cancel.
    let state = b.execute(
        "const opener = [...document.querySelectorAll('button')].find((x) => x.textContent === 'Reset and Send New'); \
         opener.click(); \
         const yes = [...document.querySelectorAll('dialog button')].find((x) => x.textContent.startsWith('Yes')); \
         yes.click(); \
         return [document.getElementById('dialog').open, yes.disabled, document.activeElement.textContent];",
        &[],
    );
    assert_eq!(state, json!([true, true, "Cancel"]));
    b.click_text("dialog button", "Cancel");
    // A real double-click with the mouse: the Alert stays open until Yes is chosen.
    b.double_click(&b.find_text("button", "Reset and Send New"));
    b.wait_text("Would you like to proceed?");
    b.find_enabled("dialog button", "Yes, reset and send");
    assert_eq!(
        b.execute("return document.getElementById('dialog').open", &[]),
        json!(true)
    );
    assert!(
        mailbox(&app).is_empty(),
        "an email went out without the Alert being answered"
    );
    b.screenshot("double-click-alert-waits");
    b.click_text("dialog button", "Yes, reset and send");
    b.wait_text("A new temporary password was emailed to");
    assert_eq!(mailbox(&app).len(), 1);
    b.assert_clean_console();
}

#[test]
fn an_ended_session_keeps_the_unsaved_edit_and_offers_to_save_it() {
    let app = demo();
    let b = Browser::start(1280, 900).unwrap();
    casey_opens_jane(&app, &b);
    b.fill("input[name=phone]", "555-0142");
    // Casey signs out in another tab: the session this tab holds ends.
    let out = b.execute(
        "return fetch('/api/auth/logout', { method: 'POST', credentials: 'same-origin' }).then((r) => r.status);",
        &[],
    );
    assert_eq!(out, json!(204));
    b.click_text("button", "Save changes");
    b.wait_text("You were signed out.");
    b.wait_text("Your changes to Doe, Jane are kept: sign in again to save them.");
    b.screenshot("session-ended-1-sign-in");
    b.fill("input[name=username]", CASEY.0);
    b.fill("input[name=password]", CASEY.1);
    b.click_text("button", "Sign in");
    b.wait_text("These changes were not saved yet.");
    assert_eq!(
        b.execute(
            "return document.querySelector('input[name=phone]').value",
            &[]
        ),
        json!("555-0142")
    );
    let jane = client_id(&app, "Jane");
    let before = Staff::sign_in(&app, CASEY).get(&format!("/api/clients/{jane}"));
    assert_ne!(before.json()["client"]["phone"], json!("555-0142"));
    b.screenshot("session-ended-2-kept");
    b.click_text("button", "Save them now");
    // Saved, the details are shown afresh, without the note.
    b.wait_gone("These changes were not saved yet.");
    let after = Staff::sign_in(&app, CASEY).get(&format!("/api/clients/{jane}"));
    assert_eq!(after.json()["client"]["phone"], json!("555-0142"));
    b.assert_clean_console();
}

#[test]
fn a_case_manager_who_forgot_her_password_chooses_a_new_one_from_the_emailed_link() {
    let app = demo();
    let b = Browser::start(1280, 900).unwrap();
    b.goto(&app.url("/staff/"));
    b.click_text("a", "Forgot your password?");
    b.wait_text("Enter the work email you sign in with.");
    b.fill("input[name=email]", CASEY.0);
    b.click_text("button", "Email me a link");
    b.wait_text("Your current password keeps working until you use the link.");
    b.screenshot("staff-forgot-1-asked");
    let mail = first_mail(&app);
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0]["to"], CASEY.0);
    let text = mail[0]["text"].as_str().unwrap();
    let link = text.lines().find(|l| l.contains("#token=")).unwrap().trim();
    b.goto(link);
    b.wait_text("Choose a new password");
    b.fill("input[name=new_password]", "violet harbour winter lamp");
    b.fill(
        "input[name=new_password_again]",
        "violet harbour winter lamp",
    );
    b.click_text("button", "Save my new password");
    // Signed in with it, in the staff console.
    b.wait_text("Showing 1 to 6 of 6 rows");
    b.assert_clean_console();
    let old = app.post(
        "/api/auth/login",
        &json!({ "realm": "staff", "username": CASEY.0, "password": CASEY.1 }),
    );
    assert_eq!(old.status, 401);
}

#[test]
fn a_reset_link_is_checked_when_its_page_opens_and_survives_a_reload() {
    let app = demo();
    fanny_forgets_her_password(&app);
    let mail = first_mail(&app);
    let text = mail[0]["text"].as_str().unwrap().to_string();
    let link = text.lines().find(|l| l.contains("#token=")).unwrap().trim();

    let b = Browser::start(1280, 900).unwrap();
    b.goto(link);
    b.find("input[name=new_password]");
    // Reloaded, the page still has its link.
    b.execute("location.reload(); return true;", &[]);
    b.find("input[name=new_password]");
    assert!(!b.body_text().contains("incomplete"), "{}", b.body_text());
    b.fill("input[name=new_password]", "silver orchard morning bell");
    b.fill(
        "input[name=new_password_again]",
        "silver orchard morning bell",
    );
    b.click_text("button", "Save my new password");
    b.wait_text("Welcome, Fanny Jackson");
    // Used, the link says so as soon as its page opens, before anything is typed.
    b.goto(link);
    b.wait_text("This reset link has expired or was already used.");
    assert_eq!(
        b.execute(
            "return document.querySelectorAll('input[name=new_password]').length",
            &[]
        ),
        json!(0)
    );
    b.screenshot("reset-link-used");
    b.assert_clean_console();
}

#[test]
fn reset_and_send_new_is_off_and_says_why_for_a_client_without_an_email() {
    let app = demo();
    let added = casey_adds(
        &app,
        &json!({ "first_name": "Nora", "last_name": "Noemail", "dob": "2014-03-02" }),
    );
    let id = added["id"].as_i64().unwrap();
    let b = Browser::start(1280, 900).unwrap();
    staff_sign_in(&app, &b, CASEY);
    b.wait_text("Showing 1 to");
    b.goto(&app.url(&format!("/staff/#/client/{id}")));
    b.wait_text("No email on file.");
    let state = b.execute(
        "const r = [...document.querySelectorAll('button')].find((x) => x.textContent === 'Reset and Send New'); \
         return [r.disabled, r.getAttribute('aria-describedby'), document.querySelector('details').open];",
        &[],
    );
    assert_eq!(state, json!([true, "no-email", true]));
    b.assert_clean_console();
}

#[test]
fn add_client_shows_every_problem_beside_its_field_and_asks_before_a_duplicate() {
    let app = demo();
    let b = casey_on_her_caseload(&app);
    b.click_text("button", "Add Client");
    b.find("form[aria-label='Add Client'] input[name=first_name]");
    let marked = b.execute(
        "return [...document.querySelectorAll('form[aria-label=\"Add Client\"] label')].filter((l) => l.textContent.includes('(required)')).map((l) => l.getAttribute('for')).map((id) => document.getElementById(id).name);",
        &[],
    );
    assert_eq!(marked, json!(["first_name", "last_name", "dob"]));
    b.click_text("form[aria-label='Add Client'] button", "Add Client");
    b.wait_text("Enter the last name");
    let shown = b.execute(
        "return [...document.querySelectorAll('form[aria-label=\"Add Client\"] [aria-invalid]')].map((e) => e.name);",
        &[],
    );
    assert_eq!(shown, json!(["first_name", "last_name", "dob"]));
    assert_eq!(
        b.execute("return document.activeElement.name", &[]),
        json!("first_name")
    );
    b.screenshot("add-client-every-problem");
    // Jane Doe again, as she is on record: the page asks before adding a second one.
    b.fill(
        "form[aria-label='Add Client'] input[name=first_name]",
        "Jane",
    );
    b.fill("form[aria-label='Add Client'] input[name=last_name]", "Doe");
    b.execute(
        "const d = document.querySelector('form[aria-label=\"Add Client\"] input[name=dob]'); d.value = '2013-02-19'; return true;",
        &[],
    );
    b.fill(
        "form[aria-label='Add Client'] input[name=email]",
        "jdoe123@hotmail1.cmo",
    );
    b.click_text("form[aria-label='Add Client'] button", "Add Client");
    b.wait_text("This client may already be in Caseport");
    b.screenshot("add-client-duplicate");
    b.click_text("dialog button", "Cancel");
    b.wait_text("Showing 1 to 6 of 6 rows");
    b.click_text("form[aria-label='Add Client'] button", "Add Client");
    b.click_text("dialog button", "Add another client");
    b.wait_text("Showing 1 to 7 of 7 rows");
    b.assert_clean_console();
}

#[test]
fn an_administrator_fills_a_caseload_and_disables_a_staff_member_from_the_pages() {
    let app = demo();
    let robin = Staff::sign_in(&app, caseport_tests::demo::ROBIN);
    // A client of Casey's that Robin does not see.
    let (name, jane) = ["Jane", "Fanny", "Mandy", "Mindy", "Janet"]
        .into_iter()
        .map(|first| (first, client_id(&app, first)))
        .find(|(_, id)| robin.get(&format!("/api/clients/{id}")).status == 404)
        .unwrap();
    let b = Browser::start(1280, 900).unwrap();
    staff_sign_in(&app, &b, ADMIN);
    b.find("nav a[href='#/staff']");
    // All Clients, where an administrator lands, says who manages each client.
    b.wait_text("Casey Manager (Primary Case Manager)");
    b.screenshot("admin-1-all-clients-managers");
    // Jane goes on Robin's caseload, from Client Information.
    b.goto(&app.url(&format!("/staff/#/client/{jane}")));
    b.wait_text("Case managers");
    let robin_id = b.wait("Robin in the staff list", || {
        let found = b.execute(
            "const o = [...document.querySelectorAll('select[name=staff_id] option')].find((o) => o.textContent.startsWith('Robin')); return o ? o.value : null;",
            &[],
        );
        found.is_string().then_some(found)
    });
    b.execute(
        "const s = document.querySelector('select[name=staff_id]'); s.value = arguments[0]; \
         document.querySelector('select[name=role]').value = 'support_primary_staff'; return true;",
        &[robin_id],
    );
    b.click_text(
        "form[aria-label='Assign to a staff member'] button",
        "Assign",
    );
    b.wait_text("Robin Support — Support Primary Staff");
    b.screenshot("admin-2-assigned");
    assert_eq!(
        robin.get(&format!("/api/clients/{jane}")).status,
        200,
        "{name}"
    );
    // And off it again, after a question.
    let remove = b.find("button[aria-label$=\"from Robin Support's caseload\"]");
    b.click(&remove);
    b.wait_text("Remove from caseload?");
    b.click_text("dialog button", "Remove");
    b.wait_gone("Robin Support — Support Primary Staff");
    assert_eq!(robin.get(&format!("/api/clients/{jane}")).status, 404);
    // The Staff page disables Robin: the open session ends.
    b.click_text("nav a", "Staff");
    let disable = b.find("button[aria-label='Disable Robin Support']");
    b.click(&disable);
    b.wait_text("Disable Robin Support?");
    b.click_text("dialog button", "Disable");
    b.wait_text("(cannot sign in)");
    b.screenshot("admin-3-staff-disabled");
    assert_eq!(robin.get("/api/caseload").status, 401);
    b.assert_clean_console();
}

#[test]
fn expected_errors_say_what_happened_and_the_resend_pause_counts_down() {
    let app = demo();
    let b = Browser::start(1280, 900).unwrap();
    staff_sign_in(&app, &b, (CASEY.0, "not her password at all"));
    b.wait_text("The username or password is not right.");
    assert!(
        !b.body_text().contains("Something went wrong"),
        "{}",
        b.body_text()
    );
    casey_opens_jane(&app, &b);
    b.click_text("button", "Use jdoe123@hotmail.com");
    b.wait_text("Email: jdoe123@hotmail.com");
    for _ in 0..2 {
        b.click_text("button", "Reset and Send New");
        b.click_text("dialog button", "Yes, reset and send");
        b.wait_text("j***@hotmail.com");
    }
    // The second one waits: the button is off and the time left counts down.
    b.wait_text("You can send another one in 1:");
    let state = b.execute(
        "const r = [...document.querySelectorAll('button')].find((x) => x.textContent === 'Reset and Send New'); \
         return [r.disabled, document.querySelector('.countdown').textContent];",
        &[],
    );
    assert_eq!(state[0], json!(true), "{state}");
    let first = state[1].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let later = b.execute(
        "return document.querySelector('.countdown').textContent",
        &[],
    );
    assert_ne!(
        later.as_str(),
        Some(first.as_str()),
        "the countdown did not move"
    );
    assert!(
        !b.body_text().contains("Something went wrong"),
        "{}",
        b.body_text()
    );
    assert_eq!(mailbox(&app).len(), 1);
    b.screenshot("resend-pause");
    b.assert_clean_console();
}

#[test]
fn a_client_changes_her_own_password_and_is_told_it_is_saved() {
    let app = demo();
    give_fanny_a_password(&app);
    let b = Browser::start(1280, 900).unwrap();
    b.goto(&app.url("/portal/"));
    b.wait_text("Sign in to see the details your clinic has for you");
    b.fill("input[name=username]", "fanny.jackson@example.com");
    b.fill("input[name=password]", "copper kettle evening song");
    b.click_text("button", "Sign in");
    b.wait_text("Change your password");
    b.fill("input[name=current_password]", "not the right one at all");
    b.fill("input[name=new_password]", "amber field quiet harbor");
    b.fill("input[name=new_password_again]", "amber field quiet harbor");
    b.click_text("button", "Change my password");
    b.wait_text("The current password is not right");
    b.fill("input[name=current_password]", "copper kettle evening song");
    b.click_text("button", "Change my password");
    b.wait_text("Your new password is saved.");
    b.assert_clean_console();
    let sign_in = |password: &str| {
        app.post(
            "/api/auth/login",
            &json!({ "realm": "portal", "username": "fanny.jackson@example.com", "password": password }),
        )
        .status
    };
    assert_eq!(sign_in("copper kettle evening song"), 401);
    assert_eq!(sign_in("amber field quiet harbor"), 200);
}

#[test]
fn the_history_says_in_words_who_did_what_and_what_changed() {
    let app = demo();
    fanny_forgets_her_password(&app);
    let fanny = client_id(&app, "Fanny");
    let admin = Staff::sign_in(&app, ADMIN);
    let robin = {
        use caseport_shared::ports::Db;
        app.db()
            .execute(
                "SELECT id FROM staff WHERE display_name = 'Robin Support'",
                &[],
            )
            .unwrap()
            .first()
            .and_then(|r| r.int(0))
            .unwrap()
    };
    let assigned = admin.send(
        "POST",
        &format!("/api/clients/{fanny}/assignments"),
        &json!({ "staff_id": robin, "role": "support_primary_staff" }),
    );
    assert_eq!(assigned.status, 200, "{}", assigned.body);
    let b = Browser::start(1280, 900).unwrap();
    staff_sign_in(&app, &b, ADMIN);
    b.find("nav a[href='#/staff']");
    b.goto(&app.url(&format!("/staff/#/client/{fanny}")));
    b.wait_text("Client details");
    b.fill("input[name=phone]", "555-0199");
    b.click_text("button", "Save changes");
    b.wait_text("Corrected details — Avery Admin: Phone: 555-555-0101 → 555-0199");
    b.wait_text("Put on a caseload — Avery Admin: Robin Support as Support Primary Staff");
    b.wait_text(
        "A reset link was asked for (Forgot password) — someone on the portal's sign-in page",
    );
    let history = b.text(&b.find("ol.history"));
    assert!(!history.contains("anonymous"), "{history}");
    assert!(!history.contains("client:"), "{history}");
    b.screenshot("history-in-words");
    b.assert_clean_console();
}

#[test]
fn a_phone_sized_window_keeps_the_caseload_and_the_reset_usable() {
    let app = demo();
    let b = Browser::start(360, 740).unwrap();
    b.resize(360, 740);
    casey_resets_jane(&app, &b, "phone");
    let overflow = b.execute(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
        &[],
    );
    assert!(
        overflow.as_i64().unwrap_or(99) <= 0,
        "the page scrolls sideways by {overflow}px"
    );
    assert_eq!(mailbox(&app).len(), 1);
    b.assert_clean_console();
}

#[test]
fn user_data_is_text_every_field_is_labelled_and_contrast_is_enough() {
    let app = demo();
    let sneaky = "<img src=x onerror=alert(1)>";
    casey_adds(
        &app,
        &json!({ "first_name": sneaky, "last_name": "Zz<b>Bold</b>", "dob": "2012-06-01", "email": "parent@example.com" }),
    );
    let b = Browser::start(1280, 900).unwrap();

    // The console check itself works: an error and a CSP violation are both reported.
    b.goto(&app.url("/staff/"));
    b.find("input[name=username]");
    b.execute(
        "console.error('probe'); const s = document.createElement('script'); s.textContent = 'window.x = 1'; document.body.append(s);",
        &[],
    );
    let seen = b.console();
    assert!(
        seen.iter()
            .any(|m| m["message"].as_str().unwrap_or_default().contains("probe")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|m| m["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Content Security Policy")),
        "{seen:?}"
    );
    b.goto(&app.url("/staff/"));

    let check = |page: &str| {
        let problems = b.accessibility_problems();
        assert!(problems.is_empty(), "{page}: {problems:#?}");
    };
    b.find("input[name=username]");
    // The checker itself finds what it looks for.
    b.execute(
        "const p = document.createElement('p'); p.id = 'pale'; p.textContent = 'pale words'; p.style.color = '#b0b0b0'; \
         const i = document.createElement('input'); i.id = 'bare'; document.querySelector('main').append(p, i);",
        &[],
    );
    let planted = b.accessibility_problems();
    assert!(
        planted.iter().any(|p| p.contains("pale words")),
        "{planted:?}"
    );
    assert!(
        planted.iter().any(|p| p.starts_with("unlabelled INPUT")),
        "{planted:?}"
    );
    b.execute(
        "document.getElementById('pale').remove(); document.getElementById('bare').remove();",
        &[],
    );
    b.screenshot("staff-0-sign-in");
    check("staff sign-in");
    b.fill("input[name=username]", CASEY.0);
    b.fill("input[name=password]", CASEY.1);
    b.click_text("button", "Sign in");
    b.wait_text("Showing 1 to 7 of 7 rows");
    b.wait_text("Zz<b>Bold</b>, <img src=x onerror=alert(1)>");
    let injected: i64 = b
        .execute(
            "return document.querySelectorAll('main img, main b').length",
            &[],
        )
        .as_i64()
        .unwrap();
    assert_eq!(injected, 0, "user data became HTML");
    check("my caseload");
    b.click_text("button.name", "Doe, Jane");
    b.wait_text("Check this email address.");
    check("caseload with the email warning");
    b.click_text(".strip a", "Client Information");
    b.wait_text("Client details");
    b.click_text("summary", "Other ways");
    check("client information");
    b.goto(&app.url("/portal/"));
    b.find("input[name=username]");
    b.screenshot("portal-0-sign-in");
    check("portal sign-in");
    b.goto(&app.url("/dev/mailbox"));
    b.wait_text("Local only.");
    check("local mailbox");
    b.assert_clean_console();
}

/// The text of the live password hint's item about guessable passwords, once the server's
/// answer for what was typed has arrived.
fn guessable_hint(b: &Browser, settled: impl Fn(&str) -> bool) -> String {
    b.wait("the password hint's answer", || {
        let text = b.execute(
            "const items = [...document.querySelectorAll('ul.rules li')]; \
             const item = items.find((li) => !/characters|match|temporary/.test(li.textContent)); \
             return item ? item.className + ' ' + item.textContent : '';",
            &[],
        );
        let text = text.as_str().unwrap_or_default().to_string();
        settled(&text).then_some(text)
    })
}

#[test]
fn an_administrator_sees_a_locked_or_new_staff_member_and_unlocks_or_resets_them() {
    let app = demo();
    let admin = Staff::sign_in(&app, ADMIN);
    let hire = admin.send(
        "POST",
        "/api/staff",
        &json!({ "email": "new.hire@example.org", "display_name": "New Hire", "role": "case_manager" }),
    );
    assert_eq!(hire.status, 201, "{}", hire.body);
    // Casey signs in once, then five wrong passwords lock her sign-in.
    Staff::sign_in(&app, CASEY);
    for _ in 0..5 {
        let wrong = app.post(
            "/api/auth/login",
            &json!({ "realm": "staff", "username": CASEY.0, "password": "not her password" }),
        );
        assert_eq!(wrong.status, 401, "{}", wrong.body);
    }
    let b = Browser::start(1280, 900).unwrap();
    staff_sign_in(&app, &b, ADMIN);
    b.click_text("nav a", "Staff");
    b.wait_text("after too many wrong passwords");
    let status_of = |name: &str| {
        b.execute(
            "const row = [...document.querySelectorAll('table.staff-list tbody tr')] \
               .find((tr) => tr.cells[0].textContent === arguments[0]); \
             return row ? row.cells[3].textContent : null;",
            &[json!(name)],
        )
    };
    assert!(
        status_of("Casey Manager")
            .as_str()
            .is_some_and(|s| s.starts_with("Locked (until")),
        "{}",
        b.body_text()
    );
    assert_eq!(status_of("New Hire"), json!("Never signed in"));
    let fits = b.execute(
        "const wrap = document.querySelector('.table-wrap'); return wrap.scrollWidth <= wrap.clientWidth;",
        &[],
    );
    assert_eq!(fits, json!(true), "the staff table scrolls sideways");
    b.screenshot("staff-1-locked-and-new");
    b.click(&b.find("button[aria-label='Unlock Casey Manager']"));
    b.wait_gone("after too many wrong passwords");
    assert!(
        status_of("Casey Manager")
            .as_str()
            .is_some_and(|s| s.starts_with("Active (last signed in")),
        "{}",
        b.body_text()
    );
    assert_eq!(
        app.post(
            "/api/auth/login",
            &json!({ "realm": "staff", "username": CASEY.0, "password": CASEY.1 }),
        )
        .status,
        200
    );
    // Robin forgot her password: the administrator resets it, after a question.
    b.click(&b.find("button[aria-label='Reset password Robin Support']"));
    b.wait_text("Reset Robin Support's password?");
    b.click_text("dialog button", "Reset password");
    b.wait_text("Robin Support's temporary password was emailed to r***@example.org");
    let robin = caseport_tests::demo::ROBIN;
    let temporary = emailed_password(&app, robin.0);
    let old = app.post(
        "/api/auth/login",
        &json!({ "realm": "staff", "username": robin.0, "password": robin.1 }),
    );
    assert_eq!(old.status, 401, "the old password still works");
    // Robin signs in with it and must choose her own; the hint already refuses her name.
    b.click_text("nav button", "Sign out");
    staff_sign_in(&app, &b, (robin.0, &temporary));
    b.wait_text("Choose your own to continue.");
    b.fill("input[name=new_password]", "robin support forever and ever");
    let hint = guessable_hint(&b, |t| t.starts_with("todo") && t.contains("name"));
    assert!(hint.contains("name"), "{hint}");
    b.fill(
        "input[name=new_password]",
        "lantern orchard quietly humming",
    );
    b.fill(
        "input[name=new_password_again]",
        "lantern orchard quietly humming",
    );
    guessable_hint(&b, |t| t.starts_with("ok"));
    b.click_text("button", "Save new password");
    // A visible confirmation, on the page she lands on.
    b.wait_text("Your new password is saved. Use it the next time you sign in.");
    b.find_text("h1", "My Caseload");
    b.assert_clean_console();
}

#[test]
fn the_password_hint_agrees_with_the_server_and_the_last_try_before_a_lock_is_announced() {
    let app = demo();
    let b = Browser::start(1280, 900).unwrap();
    // Four wrong passwords: the fourth answer says what the fifth would do.
    for n in 1..=4 {
        staff_sign_in(&app, &b, (CASEY.0, "not her password at all"));
        b.wait_text("The username or password is not right.");
        let warned = b
            .body_text()
            .contains("If the next password is wrong too, this account is locked for 30 seconds.");
        assert_eq!(warned, n == 4, "attempt {n}: {}", b.body_text());
    }
    b.screenshot("sign-in-last-try-warning");
    // The administrator's set-password form has the hint, and the hint asks the server.
    let jane = client_id(&app, "Jane");
    staff_sign_in(&app, &b, ADMIN);
    b.find_text("h1", "All Clients");
    b.goto(&app.url(&format!("/staff/#/client/{jane}")));
    b.wait_text("Client details");
    b.click_text("summary", "Other ways");
    for (typed, says) in [
        ("passwordpassword", "repeated"),
        ("123456789012345", ""),
        ("jane doe spring garden party", "name"),
    ] {
        b.fill("input[name=password]", typed);
        let hint = guessable_hint(&b, |t| t.starts_with("todo") && !t.contains("Not a common"));
        assert!(hint.contains(says), "{typed}: {hint}");
        let refused = Staff::sign_in(&app, ADMIN).send(
            "PUT",
            &format!("/api/clients/{jane}/portal-password"),
            &json!({ "password": typed, "password_confirm": typed, "reset_required": true }),
        );
        assert_eq!(refused.json()["error"]["code"], "weak_password", "{typed}");
    }
    b.fill("input[name=password]", "copper kettle evening song");
    let hint = guessable_hint(&b, |t| t.starts_with("ok"));
    assert!(hint.contains("Not a common"), "{hint}");
    b.screenshot("set-password-hint");
    b.assert_clean_console();
}

#[test]
fn on_a_phone_rows_are_cards_and_reset_and_send_new_is_in_view() {
    let app = demo();
    let b = Browser::start(360, 740).unwrap();
    b.resize(360, 740);
    staff_sign_in(&app, &b, CASEY);
    b.wait_text("Showing 1 to 6 of 6 rows");
    // Each row is a card with its labels: the date of birth and Client Information show
    // without scrolling sideways.
    let card = b.execute(
        "const row = document.querySelector('table.caseload tbody tr'); \
         const dob = row.cells[1]; const link = row.querySelector('a'); \
         return [getComputedStyle(row).display, getComputedStyle(dob, '::before').content, \
                 dob.getBoundingClientRect().right <= innerWidth, link.getBoundingClientRect().right <= innerWidth, \
                 document.documentElement.scrollWidth - document.documentElement.clientWidth];",
        &[],
    );
    assert_eq!(card, json!(["block", "\"DOB\"", true, true, 0]), "{card}");
    // The headings are hidden there, so sorting has its own control.
    b.execute(
        "const s = document.getElementById('sort-by'); s.value = 'dob desc'; \
         s.dispatchEvent(new Event('change')); return true;",
        &[],
    );
    b.wait_text("Showing 1 to 6 of 6 rows");
    let first = b.execute(
        "return location.hash.includes('sort=dob') && location.hash.includes('dir=desc')",
        &[],
    );
    assert_eq!(first, json!(true));
    b.screenshot("phone-1-caseload-cards");
    // Client Information: Reset and Send New is on the first screen, above the details form.
    let fanny = client_id(&app, "Fanny");
    b.goto(&app.url(&format!("/staff/#/client/{fanny}")));
    b.wait_text("Client details");
    b.screenshot("phone-2-client-information");
    let reset = b.execute(
        "const r = [...document.querySelectorAll('button')].find((x) => x.textContent === 'Reset and Send New'); \
         return [r.getBoundingClientRect().bottom, innerHeight, scrollY];",
        &[],
    );
    assert!(
        reset[0].as_f64().unwrap() <= reset[1].as_f64().unwrap() && reset[2] == json!(0),
        "Reset and Send New is below the fold: {reset}"
    );
    b.assert_clean_console();
}

#[test]
fn a_long_name_at_1280_keeps_the_actions_column_on_screen() {
    let app = demo();
    casey_adds(
        &app,
        &json!({
            "first_name": "Maximiliana Alexandrina Josephina",
            "last_name": "Wolfeschlegelsteinhausenbergerdorff-Featherstonehaugh-Cholmondeley",
            "dob": "2012-05-06",
            "email": "max.family@example.com"
        }),
    );
    let b = Browser::start(1280, 900).unwrap();
    b.resize(1280, 900);
    staff_sign_in(&app, &b, CASEY);
    b.wait_text("Showing 1 to 7 of 7 rows");
    let fits = b.execute(
        "const wrap = document.querySelector('.table-wrap'); \
         const links = [...document.querySelectorAll('table.caseload a')]; \
         return [wrap.scrollWidth <= wrap.clientWidth, links.every((a) => a.getBoundingClientRect().right <= innerWidth)];",
        &[],
    );
    assert_eq!(
        fits,
        json!([true, true]),
        "the Actions column is pushed off"
    );
    b.screenshot("wide-long-name");
    b.assert_clean_console();
}

#[test]
fn the_caseload_keeps_its_sort_page_and_client_across_a_reload_and_sorting_keeps_the_focus() {
    let app = demo();
    let b = casey_on_her_caseload(&app);
    // Sorting by keyboard: the focus stays on the column's sort button.
    b.find("button.sort[data-sort=dob]");
    b.execute(
        "document.querySelector('button.sort[data-sort=dob]').focus(); return true;",
        &[],
    );
    b.press(keys::ENTER);
    b.wait_text("Showing 1 to 6 of 6 rows");
    b.wait("DOB sorted ascending with the focus on its sort button", || {
        let state = b.execute(
            "const th = document.querySelector('button.sort[data-sort=dob]').closest('th'); \
             return [th.getAttribute('aria-sort'), document.activeElement.dataset.sort || document.activeElement.tagName];",
            &[],
        );
        (state == json!(["ascending", "dob"])).then_some(())
    });
    b.click_text("button.name", "Doe, Jane");
    b.wait_text("Selected Client: Doe, Jane");
    // A reload keeps the sort and the selected client.
    b.execute("location.reload(); return true;", &[]);
    b.wait_text("Selected Client: Doe, Jane");
    let kept = b.execute(
        "return document.querySelector('button.sort[data-sort=dob]').closest('th').getAttribute('aria-sort')",
        &[],
    );
    assert_eq!(kept, json!("ascending"));
    // To Client Information and back by its link: the list is as it was.
    b.click_text(".strip a", "Client Information");
    b.wait_text("Client details");
    b.click_text("a", "Select Different Client");
    b.wait_text("Selected Client: Doe, Jane");
    let back = b.execute(
        "return document.querySelector('button.sort[data-sort=dob]').closest('th').getAttribute('aria-sort')",
        &[],
    );
    assert_eq!(back, json!("ascending"));
    b.assert_clean_console();
}

#[test]
fn the_shown_once_dialog_keeps_the_username_whole_and_asks_before_escape_closes_it() {
    let app = demo();
    let fanny = client_id(&app, "Fanny");
    give_fanny_a_password(&app);
    let b = Browser::start(1280, 900).unwrap();
    staff_sign_in(&app, &b, ADMIN);
    b.find_text("h1", "All Clients");
    b.goto(&app.url(&format!("/staff/#/client/{fanny}")));
    b.wait_text("Client details");
    b.click_text("summary", "Other ways");
    b.click_text("button", "Show a temporary password once");
    b.click_text("dialog button", "Yes, show it once");
    b.find("#shown-password");
    let lines = b.execute(
        "const r = document.createRange(); r.selectNodeContents(document.getElementById('shown-username')); \
         return [document.getElementById('shown-username').textContent, r.getClientRects().length];",
        &[],
    );
    assert_eq!(lines, json!(["fanny.jackson@example.com", 1]), "{lines}");
    b.press(keys::ESCAPE);
    b.wait_text("This password is shown only once");
    assert_eq!(
        b.execute("return document.getElementById('dialog').open", &[]),
        json!(true),
        "Escape closed the dialog"
    );
    b.screenshot("shown-once-escape-asks");
    b.click_text("dialog button", "Keep it open");
    b.press(keys::ESCAPE);
    b.click_text("dialog button", "Close without passing it on");
    b.wait_gone("Temporary log-in information");
    b.assert_clean_console();
}

#[test]
fn search_finds_names_typed_in_any_order_and_without_accents_and_sorts_them_as_read() {
    let app = demo();
    casey_adds(
        &app,
        &json!({ "first_name": "Zoë", "last_name": "Émoji-Test", "dob": "2014-07-08" }),
    );
    let b = Browser::start(1280, 900).unwrap();
    staff_sign_in(&app, &b, CASEY);
    b.wait_text("Showing 1 to 7 of 7 rows");
    let names = || {
        b.execute(
            "return [...document.querySelectorAll('table.caseload button.name')].map((x) => x.textContent)",
            &[],
        )
    };
    // Sorted as people read: the É among the E's, before Jackson.
    assert_eq!(
        names(),
        json!([
            "Able, Janet",
            "Albert, Jack",
            "Doe, Jane",
            "Émoji-Test, Zoë",
            "Jackson, Fanny",
            "Smith, Mandy",
            "Smith, Mindy"
        ])
    );
    for (typed, found) in [
        ("Jane Doe", "Doe, Jane"),
        ("doe jane", "Doe, Jane"),
        ("zoe", "Émoji-Test, Zoë"),
        ("emoji zo", "Émoji-Test, Zoë"),
    ] {
        b.fill("input[name=q]", typed);
        b.click_text("form.search button", "Search");
        b.wait_text("Showing 1 to 1 of 1 rows");
        assert_eq!(names(), json!([found]), "{typed}");
    }
    b.screenshot("search-without-accents");
    b.assert_clean_console();
}

#[test]
fn a_staff_member_changes_her_own_password_from_the_console() {
    let app = demo();
    let b = casey_on_her_caseload(&app);
    b.click_text("nav a", "Change password");
    b.wait_text("Change your password");
    b.fill("input[name=current_password]", "not her password at all");
    b.fill(
        "input[name=new_password]",
        "lantern orchard quietly humming",
    );
    b.fill(
        "input[name=new_password_again]",
        "lantern orchard quietly humming",
    );
    b.click_text("button", "Change my password");
    b.wait_text("The current password is not right.");
    b.fill("input[name=current_password]", CASEY.1);
    b.click_text("button", "Change my password");
    b.wait_text("Your new password is saved.");
    b.screenshot("staff-own-password");
    let login = |password: &str| {
        app.post(
            "/api/auth/login",
            &json!({ "realm": "staff", "username": CASEY.0, "password": password }),
        )
        .status
    };
    assert_eq!(login(CASEY.1), 401, "the old password still works");
    assert_eq!(login("lantern orchard quietly humming"), 200);
    b.assert_clean_console();
}

#[test]
fn the_operator_creates_suspends_exports_and_deletes_a_clinic_from_the_page() {
    let app = demo();
    let b = Browser::start(1280, 900).unwrap();
    let ops = app.url_at("operator.localhost", "");
    b.goto(&format!("{ops}/operator/"));
    b.wait_text("Operator sign-in");
    b.fill("input[name=username]", caseport_tests::demo::OPERATOR.0);
    b.fill("input[name=password]", caseport_tests::demo::OPERATOR.1);
    b.click_text("button", "Sign in");
    b.wait_text("South Clinic (demo)");
    let table = b.text(&b.find("table.clinics"));
    assert!(table.contains("south.localhost"), "{table}");

    // A new clinic: a host name another clinic has is refused beside the field.
    b.fill("input[name=name]", "West Clinic");
    b.fill("input[name=hosts]", "south.localhost");
    b.fill("input[name=admin_name]", "Wes Admin");
    b.fill("input[name=admin_email]", "wes@west.example");
    b.click_text("button", "Create clinic");
    b.wait_text("south.localhost is already another clinic's host name.");
    b.fill("input[name=hosts]", "west.localhost");
    b.click_text("button", "Create clinic");
    b.wait_text("West Clinic is ready.");
    b.screenshot("operator-1-clinic-created");
    let shown = b.body_text();
    let temporary = shown
        .lines()
        .find_map(|l| l.strip_prefix("Temporary password: "))
        .unwrap_or_else(|| panic!("no temporary password shown:\n{shown}"))
        .trim()
        .to_string();
    assert!(
        shown.contains(&format!("{}/staff/", app.url_at("west.localhost", ""))),
        "{shown}"
    );
    // Its first administrator signs in there with it and must choose a password.
    let first = app.call(
        "POST",
        "/api/auth/login",
        Some(&serde_json::json!({ "realm": "staff", "username": "wes@west.example", "password": temporary })),
        &[("host", &format!("west.localhost:{}", app.port()))],
    );
    assert_eq!(
        first.json()["status"],
        "password_change_required",
        "{}",
        first.body
    );

    // Suspend South (asked first), then its export is a download, then delete it by name.
    let south_row = || b.find_text("table.clinics tr", "South Clinic (demo)");
    let _ = south_row();
    b.execute(
        "for (const tr of document.querySelectorAll('table.clinics tr')) { if (tr.textContent.includes('South Clinic')) { [...tr.querySelectorAll('button')].find((x) => x.textContent === 'Suspend').click(); } }",
        &[],
    );
    b.wait_text("Suspend South Clinic (demo)?");
    b.click_text("dialog button", "Suspend");
    b.wait_text("South Clinic (demo) is suspended.");
    let export = b.execute(
        "return [...document.querySelectorAll('table.clinics a')].map((a) => a.getAttribute('href'))",
        &[],
    );
    assert!(
        export
            .to_string()
            .contains("/api/operator/clinics/2/export"),
        "{export}"
    );
    b.click_text("button", "Delete…");
    b.wait_text("It cannot be undone.");
    b.fill("input[name=confirm]", "South");
    b.click_text("button", "Delete for good");
    b.wait_text("Type the clinic's name exactly to confirm.");
    b.fill("input[name=confirm]", "South Clinic (demo)");
    b.click_text("button", "Delete for good");
    b.wait_text("South Clinic (demo) is deleted.");
    assert!(!b.text(&b.find("table.clinics")).contains("South Clinic"));
    assert_eq!(
        app.call(
            "GET",
            "/api/auth/me",
            None,
            &[("host", &format!("south.localhost:{}", app.port()))]
        )
        .status,
        404
    );

    // The usage page: billable calls per clinic and day (Casey's sign-in is one).
    app.sign_in("staff", CASEY.0, CASEY.1);
    b.goto(&format!("{ops}/operator/#/usage"));
    b.wait_text("Billable calls per clinic and day");
    b.wait_text("Sign-ins");
    let usage = b.text(&b.find("table.usage"));
    assert!(
        usage.contains("Clinic 1 (named by the clinic_name setting)"),
        "{usage}"
    );
    b.screenshot("operator-2-usage");
    b.assert_clean_console();
}
