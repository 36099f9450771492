//! The reset invariants on real SQLite, with a scripted mail transport.

use std::cell::RefCell;
use std::time::Duration;

use super::*;
use crate::auth::{LoginRequest, SignIn, login};
use crate::mail::{InResponse, OutRequest, TransportError};
use crate::testing;

/// Answers from a script (then 200) and keeps every request body; `crash` panics after
/// taking the email, as if the component were stopped before recording the answer.
#[derive(Default)]
struct FakeProvider {
    script: RefCell<Vec<u16>>,
    bodies: RefCell<Vec<String>>,
    crash: bool,
}

impl Transport for FakeProvider {
    fn send(&self, request: &OutRequest, _: Duration) -> Result<InResponse, TransportError> {
        self.bodies
            .borrow_mut()
            .push(String::from_utf8(request.body.to_vec()).unwrap());
        if self.crash {
            panic!("stopped between sending and recording");
        }
        let status = if self.script.borrow().is_empty() {
            200
        } else {
            self.script.borrow_mut().remove(0)
        };
        let n = self.bodies.borrow().len();
        Ok(InResponse {
            status,
            retry_after: None,
            message_id_header: None,
            body: format!(r#"{{"MessageID":"m{n}","ErrorCode":0,"Message":"OK"}}"#).into_bytes(),
        })
    }
    fn sleep(&self, _: Duration) {}
}

impl FakeProvider {
    /// The temporary password of the `n`th email.
    fn password(&self, n: usize) -> String {
        let body: Json = serde_json::from_str(&self.bodies.borrow()[n]).unwrap();
        body["TextBody"]
            .as_str()
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Temporary password: "))
            .unwrap()
            .to_string()
    }
}

/// The shared test world, with Postmark as the mail provider.
struct World {
    base: testing::World,
    /// `None`: no mail provider configured.
    mail: Option<MailSettings>,
}

impl std::ops::Deref for World {
    type Target = testing::World;

    fn deref(&self) -> &testing::World {
        &self.base
    }
}

impl World {
    fn new() -> Self {
        let mail = MailSettings::from_variables(
            |n| {
                (n == "mail_provider")
                    .then(|| "postmark".to_string())
                    .or_else(|| (n == "mail_api_token").then(|| "t".to_string()))
            },
            Duration::from_secs(10),
        )
        .unwrap();
        Self {
            base: testing::World::new(),
            mail,
        }
    }

    fn id(&self, sql: &str) -> i64 {
        self.raw()
            .execute(sql, &[])
            .unwrap()
            .first()
            .unwrap()
            .int(0)
            .unwrap()
    }

    fn staff(&self, email: &str) -> (Account, Role) {
        let id = self.id(&format!("SELECT id FROM staff WHERE email = '{email}'"));
        let account = Account {
            kind: AccountKind::Staff,
            id,
        };
        (account, clients::staff_role(&self.db, account).unwrap())
    }

    fn jane(&self) -> i64 {
        let id = self.id("SELECT id FROM clients WHERE first_name = 'Jane'");
        self.raw()
            .execute(
                "UPDATE clients SET email = 'jdoe123@hotmail.com' WHERE id = ?",
                &[id.into()],
            )
            .unwrap();
        id
    }

    fn reset(
        &self,
        provider: &FakeProvider,
        client: i64,
        delivery: &str,
        key: &str,
    ) -> Result<Outcome, ApiError> {
        self.reset_as("casey.manager@example.org", provider, client, delivery, key)
    }

    fn reset_as(
        &self,
        staff: &str,
        provider: &FakeProvider,
        client: i64,
        delivery: &str,
        key: &str,
    ) -> Result<Outcome, ApiError> {
        let (casey, role) = self.staff(staff);
        reset(
            &self.ctx(),
            self.mail.as_ref(),
            provider,
            casey,
            role,
            client,
            &ResetRequest {
                delivery: delivery.into(),
                idempotency_key: key.into(),
            },
        )
    }

    fn portal_login(&self, username: &str, password: &str) -> Result<SignIn, ApiError> {
        login(
            &self.ctx(),
            &LoginRequest {
                realm: "portal".into(),
                username: username.into(),
                password: password.into(),
            },
            "10.0.0.9",
        )
    }

    fn delivery_status(&self) -> String {
        self.raw()
            .execute(
                "SELECT status FROM mail_deliveries ORDER BY id DESC LIMIT 1",
                &[],
            )
            .unwrap()
            .first()
            .unwrap()
            .string(0)
            .unwrap()
    }
}

fn change_required(r: Result<SignIn, ApiError>) -> bool {
    matches!(r, Ok(SignIn::ChangeRequired { .. }))
}

/// Gives Jane a known password, as if she had set it herself.
fn known_old_password(w: &World, jane: i64) {
    let phc = passwords::hash("jane's old long passphrase").unwrap();
    w.raw().execute(
        "UPDATE credentials SET phc = ?, must_change = 0, temp_expires_at = NULL WHERE owner_kind = 'client' AND owner_id = ?",
        &[phc.into(), jane.into()],
    )
    .unwrap();
}

#[test]
fn a_sent_password_is_the_only_one_that_works() {
    let w = World::new();
    let jane = w.jane();
    known_old_password(&w, jane);
    let p = FakeProvider::default();
    let Outcome::Json { status: 200, body } = w.reset(&p, jane, "email", "key-00000001").unwrap()
    else {
        panic!("not sent")
    };
    assert_eq!(body["sent_to"], "j***@hotmail.com");
    assert_eq!(
        body["username"], "jdoe123@hotmail.com",
        "the corrected address becomes the username"
    );
    assert!(
        matches!(w.portal_login("jdoe123@hotmail1.cmo", "jane's old long passphrase"), Err(e) if e.code == "invalid_credentials")
    );
    assert!(
        matches!(w.portal_login("jdoe123@hotmail.com", "jane's old long passphrase"), Err(e) if e.code == "invalid_credentials")
    );
    assert!(change_required(w.portal_login(
        "jdoe123@hotmail.com",
        &p.password(0).to_lowercase()
    )));
    assert_eq!(w.delivery_status(), "accepted");
}

#[test]
fn with_no_mail_provider_nothing_is_sent_or_changed_but_show_once_works() {
    let mut w = World::new();
    w.mail = None;
    let jane = w.jane();
    known_old_password(&w, jane);
    let count = |sql: &str| w.id(sql);
    let before = (
        count("SELECT count(*) FROM portal_resets"),
        count("SELECT count(*) FROM mail_deliveries"),
        count("SELECT count(*) FROM audit_log"),
    );
    let p = FakeProvider::default();
    let err = w.reset(&p, jane, "email", "key-00000009").err().unwrap();
    assert_eq!(
        (err.status(), err.code.as_str()),
        (503, "mail_not_configured")
    );
    assert!(err.message.contains("mail_provider"), "{}", err.message);
    assert!(p.bodies.borrow().is_empty());
    let after = (
        count("SELECT count(*) FROM portal_resets"),
        count("SELECT count(*) FROM mail_deliveries"),
        count("SELECT count(*) FROM audit_log"),
    );
    assert_eq!(before, after, "nothing written");
    assert!(matches!(
        w.portal_login("jdoe123@hotmail1.cmo", "jane's old long passphrase"),
        Ok(SignIn::Session { .. })
    ));
    assert!(matches!(
        w.reset(&p, jane, "display", "key-00000010"),
        Ok(Outcome::Shown { .. })
    ));
}

#[test]
fn a_failed_send_keeps_the_old_password_and_says_why() {
    let w = World::new();
    let jane = w.jane();
    known_old_password(&w, jane);
    let p = FakeProvider {
        script: RefCell::new(vec![503, 503, 503]),
        ..Default::default()
    };
    let err = w.reset(&p, jane, "email", "key-00000002").err().unwrap();
    assert_eq!((err.status(), err.code.as_str()), (502, "mail_failed"));
    assert!(
        err.message.contains("previous password still works"),
        "{}",
        err.message
    );
    assert_eq!(p.bodies.borrow().len(), 3, "retried up to the bound");
    assert!(matches!(
        w.portal_login("jdoe123@hotmail1.cmo", "jane's old long passphrase"),
        Ok(SignIn::Session { .. })
    ));
    assert!(
        matches!(w.portal_login("jdoe123@hotmail.com", &p.password(0)), Err(e) if e.code == "invalid_credentials")
    );
    assert_eq!(w.delivery_status(), "failed");
    // A failure does not block the next try.
    assert!(
        w.reset(&FakeProvider::default(), jane, "email", "key-00000003")
            .is_ok()
    );
}

#[test]
fn a_repeated_key_answers_the_same_and_sends_nothing() {
    let w = World::new();
    let jane = w.jane();
    let p = FakeProvider::default();
    let Outcome::Json { body: first, .. } = w.reset(&p, jane, "email", "key-00000004").unwrap()
    else {
        panic!()
    };
    let Outcome::Json { body: again, .. } = w.reset(&p, jane, "email", "key-00000004").unwrap()
    else {
        panic!()
    };
    assert_eq!(first, again);
    assert_eq!(p.bodies.borrow().len(), 1);
    // Another key right after a successful send is refused; later it is allowed.
    let err = w.reset(&p, jane, "email", "key-00000005").err().unwrap();
    assert_eq!((err.status(), err.code.as_str()), (409, "recently_reset"));
    assert_eq!(p.bodies.borrow().len(), 1);
    w.clock.0.set(w.clock.0.get() + RECENT_SECONDS + 1);
    assert!(w.reset(&p, jane, "email", "key-00000005").is_ok());
    assert_eq!(p.bodies.borrow().len(), 2);
}

#[test]
fn an_interrupted_send_still_signs_in_and_is_shown_as_interrupted() {
    let w = World::new();
    let jane = w.jane();
    known_old_password(&w, jane);
    let p = FakeProvider {
        crash: true,
        ..Default::default()
    };
    let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        w.reset(&p, jane, "email", "key-00000006")
    }));
    assert!(stopped.is_err());
    // The old password still works until the emailed one is used…
    assert!(matches!(
        w.portal_login("jdoe123@hotmail1.cmo", "jane's old long passphrase"),
        Ok(SignIn::Session { .. })
    ));
    // …the case manager sees the send may not have arrived once it is stale…
    w.clock.0.set(w.clock.0.get() + stale_seconds(&w.ctx()) + 1);
    let last =
        crate::portal_resets::last_reset(&w.db, jane, w.clock.0.get(), stale_seconds(&w.ctx()))
            .unwrap()
            .unwrap();
    assert!(last.detail.unwrap().contains("interrupted"));
    // …and the emailed password works, completing the reset.
    assert!(change_required(
        w.portal_login("jdoe123@hotmail.com", &p.password(0))
    ));
    assert!(
        w.portal_login("jdoe123@hotmail1.cmo", "jane's old long passphrase")
            .is_err()
    );
    let last =
        crate::portal_resets::last_reset(&w.db, jane, w.clock.0.get(), stale_seconds(&w.ctx()))
            .unwrap()
            .unwrap();
    assert_eq!(last.mail_status.as_deref(), Some("delivered"));
}

#[test]
fn display_shows_once_and_stores_only_a_hash() {
    let w = World::new();
    let allison = w.id("SELECT id FROM clients WHERE first_name = 'Allison'");
    let p = FakeProvider::default();
    let show = || w.reset_as("admin@example.org", &p, allison, "display", "key-00000007");
    let Outcome::Shown {
        username,
        temporary_password,
        ..
    } = show().unwrap()
    else {
        panic!("not shown")
    };
    assert!(p.bodies.borrow().is_empty());
    assert!(change_required(
        w.portal_login(&username, temporary_password.expose())
    ));
    assert!(matches!(show(), Err(e) if e.code == "already_shown"));
}

#[test]
fn siblings_sharing_an_address_get_different_usernames() {
    let w = World::new();
    let mandy = w.id("SELECT id FROM clients WHERE first_name = 'Mandy'");
    let mindy = w.id("SELECT id FROM clients WHERE first_name = 'Mindy'");
    for id in [mandy, mindy] {
        w.raw()
            .execute(
                "UPDATE clients SET email = 'smith.family@gmail.com' WHERE id = ?",
                &[id.into()],
            )
            .unwrap();
        // Casey has both on her caseload.
        w.reset(
            &FakeProvider::default(),
            id,
            "email",
            &format!("key-sibling-{id}"),
        )
        .unwrap();
    }
    let names = w
        .raw()
        .execute(
            "SELECT username FROM credentials WHERE owner_kind = 'client' ORDER BY owner_id",
            &[],
        )
        .unwrap()
        .texts(0);
    assert!(names.contains(&"smith.family@gmail.com".to_string()));
    assert!(
        names.contains(&"mindy.smith".to_string()) || names.contains(&"mandy.smith".to_string()),
        "{names:?}"
    );
}

#[test]
fn delivery_events_move_the_status_and_a_bounce_stays() {
    let w = World::new();
    let jane = w.jane();
    w.reset(&FakeProvider::default(), jane, "email", "key-00000008")
        .unwrap();
    let event = |status, id: &str| mail::Event {
        status,
        message_id: Some(id.into()),
        delivery_id: None,
        detail: (status == EventStatus::Bounced).then(|| "mailbox not found".to_string()),
        kind: "test".into(),
        at: None,
    };
    let events = [
        event(EventStatus::Bounced, "m1"),
        event(EventStatus::Delivered, "m1"),
        event(EventStatus::Delivered, "nope"),
    ];
    let applied = apply_events(&w.deployment_ctx(), Provider::Postmark, "call-1", &events).unwrap();
    assert_eq!(
        applied,
        Applied {
            updated: 2,
            unknown: 1,
            replayed: false
        }
    );
    // The same call again (a replay) changes nothing and records nothing.
    let entries = w.id("SELECT count(*) FROM audit_log");
    let again = apply_events(&w.deployment_ctx(), Provider::Postmark, "call-1", &events).unwrap();
    assert!(again.replayed && again.updated == 0);
    assert_eq!(w.id("SELECT count(*) FROM audit_log"), entries);
    let last =
        crate::portal_resets::last_reset(&w.db, jane, w.clock.0.get(), stale_seconds(&w.ctx()))
            .unwrap()
            .unwrap();
    assert_eq!(
        (last.mail_status.as_deref(), last.detail.as_deref()),
        (Some("bounced"), Some("mailbox not found"))
    );
}

#[test]
fn a_password_change_ends_a_parked_reset() {
    let w = World::new();
    let jane = w.jane();
    known_old_password(&w, jane);
    let p = FakeProvider {
        crash: true,
        ..Default::default()
    };
    let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        w.reset(&p, jane, "email", "key-00000031")
    }));
    assert!(stopped.is_err(), "the send was interrupted");
    // The client signs in with the password they know and chooses a new one.
    let Ok(SignIn::Session { token, .. }) =
        w.portal_login("jdoe123@hotmail1.cmo", "jane's old long passphrase")
    else {
        panic!("the old password signs in");
    };
    crate::auth::change_password(
        &w.ctx(),
        &crate::auth::ChangeRequest {
            change_token: None,
            current_password: Some("jane's old long passphrase".into()),
            new_password: "lantern meadow quietly hums".into(),
        },
        Some(token.expose()),
        "10.0.0.9",
    )
    .unwrap();
    // The emailed password of the interrupted reset no longer signs in, nor replaces hers.
    let parked = w.portal_login("jdoe123@hotmail.com", &p.password(0));
    assert!(
        matches!(&parked, Err(e) if e.code == "invalid_credentials"),
        "{:?}",
        parked.err()
    );
    assert!(matches!(
        w.portal_login("jdoe123@hotmail1.cmo", "lantern meadow quietly hums"),
        Ok(SignIn::Session { .. })
    ));
}

#[test]
fn forgot_password_links_go_only_to_the_address_on_record() {
    use crate::auth::{ForgotRequest, forgot};
    use crate::client_info::{Patch, update};
    let w = World::new();
    let jane = w.id("SELECT id FROM clients WHERE first_name = 'Jane'");
    let ask = |address: &str| {
        forgot(
            &w.ctx(),
            true,
            &ForgotRequest {
                email: address.into(),
                realm: "portal".into(),
            },
            "10.0.0.9",
        )
        .unwrap()
    };
    // Jane's username is her mistyped old address.
    assert_eq!(ask("jdoe123@hotmail1.cmo").len(), 1);
    let (casey, role) = w.staff("casey.manager@example.org");
    let version = w.id(&format!("SELECT version FROM clients WHERE id = {jane}"));
    let updated = update(
        &w.ctx(),
        casey,
        role,
        jane,
        &Patch {
            version,
            first_name: None,
            middle_name: None,
            last_name: None,
            dob: None,
            email: Some("jdoe123@hotmail.com".into()),
            phone: None,
        },
        w.ctx().today(),
    )
    .unwrap();
    // The old address looks wrong (.cmo), so it is not written to.
    assert!(updated.previous_email.is_none());
    // The username followed the correction…
    assert_eq!(
        crate::credentials::username(
            &w.db,
            Account {
                kind: AccountKind::Client,
                id: jane
            }
        )
        .unwrap()
        .as_deref(),
        Some("jdoe123@hotmail.com")
    );
    // …and only the address on record gets a link.
    assert!(ask("jdoe123@hotmail1.cmo").is_empty());
    let links = ask("jdoe123@hotmail.com");
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].email.as_ref(), "jdoe123@hotmail.com");

    // A username that stays an old address (a show-once reset made it, then the address on
    // record changed without touching the account) gets no link either.
    let mindy = w.id("SELECT id FROM clients WHERE first_name = 'Mindy'");
    w.reset(&FakeProvider::default(), mindy, "display", "key-00000032")
        .unwrap();
    w.raw()
        .execute(
            "UPDATE clients SET email = 'smith.family@example.com' WHERE id = ?",
            &[mindy.into()],
        )
        .unwrap();
    assert_eq!(ask("mindy.smith@example.com").len(), 0);
}
