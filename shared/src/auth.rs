//! Signing in and out, forced and voluntary password changes, forgotten passwords and the
//! one-time setup of the first administrator: the rules behind `/api/auth/*` and `/api/setup`.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api_error::{ApiError, Code};
use crate::credentials::{self, Credential};
use crate::ctx::Ctx;
use crate::deliveries::{self, Recorded};
use crate::domain::{Account, AccountKind, DisplayName, Email, Password, Realm, Role, Token};
use crate::mail::{self, MailSettings, Transport};
use crate::passwords::{self, Check};
use crate::policy;
use crate::portal_resets;
use crate::ports::{Db, StorageError, transaction};
use crate::throttle;
use crate::tokens::{self, Purpose};

/// How long the forced-change step may take after signing in with a temporary password.
const CHANGE_TOKEN_SECONDS: i64 = 15 * 60;
/// How long an emailed reset link works.
const RESET_TOKEN_SECONDS: i64 = 30 * 60;

/// The signed-in user, as the API shows it.
#[derive(Debug, Serialize, PartialEq)]
pub struct UserView {
    pub id: i64,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    pub display_name: String,
}

/// How a sign-in ended.
pub enum SignIn {
    /// Signed in: the session token goes into the cookie.
    Session { user: UserView, token: Token },
    /// Right temporary password: a new password must be chosen first.
    ChangeRequired {
        change_token: Token,
        expires_at: String,
    },
}

/// `POST /api/auth/login`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub realm: String,
    pub username: String,
    pub password: String,
}

/// `POST /api/auth/change-password`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    #[serde(default)]
    pub change_token: Option<String>,
    #[serde(default)]
    pub current_password: Option<String>,
    pub new_password: String,
}

/// `POST /api/auth/forgot`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgotRequest {
    pub email: String,
    /// `portal` (the default) or `staff`: whose account the link is for.
    #[serde(default = "portal_realm")]
    pub realm: String,
}

fn portal_realm() -> String {
    "portal".into()
}

/// `POST /api/auth/reset`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub token: String,
    pub new_password: String,
}

/// `POST /api/setup`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    pub setup_token: String,
    pub email: String,
    pub display_name: String,
    pub password: String,
}

fn invalid_credentials() -> ApiError {
    ApiError::new(
        Code::InvalidCredentials,
        "The username or password is not right. Check both and try again.",
    )
}

fn too_many_attempts(retry_after: u64) -> ApiError {
    let minutes = retry_after.div_ceil(60).max(1);
    ApiError::new(
        Code::TooManyAttempts,
        format!(
            "Too many attempts. Wait {minutes} minute{} and try again.",
            if minutes == 1 { "" } else { "s" }
        ),
    )
    .retry_after(retry_after)
}

/// The user as shown by the API.
pub fn user_view(db: &dyn Db, account: Account) -> Result<Option<UserView>, StorageError> {
    Ok(match account.kind {
        AccountKind::Staff => db
            .execute(
                "SELECT display_name, role FROM staff WHERE clinic_id = ?1 AND id = ? AND status = 'active'",
                &[account.id.into()],
            )?
            .first()
            .and_then(|r| {
                Some(UserView {
                    id: account.id,
                    kind: "staff",
                    role: Role::from_db(r.text(1)?).map(Role::as_str),
                    display_name: r.text(0)?.to_string(),
                })
            }),
        AccountKind::Client => db
            .execute(
                "SELECT first_name, last_name FROM clients WHERE clinic_id = ?1 AND id = ?",
                &[account.id.into()],
            )?
            .first()
            .and_then(|r| {
                Some(UserView {
                    id: account.id,
                    kind: "client",
                    role: None,
                    display_name: format!("{} {}", r.text(0)?, r.text(1)?),
                })
            }),
    })
}

/// Checks a password the account chose for itself: the policy (its own words included), not
/// the temporary password it replaces, and not its current password.
fn check_new_password(ctx: &Ctx<'_>, cred: &Credential, new: &Password) -> Result<(), ApiError> {
    let is_current = cred.accepts(new.expose())?;
    let own_words = credentials::own_words(ctx.db, cred.account)?;
    let context = policy::Context {
        own_words: &own_words,
        equals_temporary: cred.must_change && is_current,
    };
    policy::require(
        new.expose(),
        ctx.settings.password_min_length,
        &context,
        "new_password",
    )?;
    if !cred.must_change && is_current {
        return Err(ApiError::new(
            Code::WeakPassword,
            "Choose a password different from your current one.",
        )
        .at("new_password"));
    }
    Ok(())
}

/// Stores a password the account chose, ends its other sessions, starts a new one, and
/// records it.
fn replace_password(
    ctx: &Ctx<'_>,
    account: Account,
    phc: &str,
    action: &str,
    detail: serde_json::Value,
) -> Result<Token, StorageError> {
    let token = credentials::replace_password(ctx, account, phc)?;
    if account.kind == AccountKind::Client {
        // A parked temporary password of an interrupted reset must not sign in later and
        // overwrite the one the client just chose.
        portal_resets::supersede_pending(ctx.db, account.id)?;
    }
    let label = account.label();
    ctx.audit(&label, action, Some(&label), detail)?;
    Ok(token)
}

/// The counters one password attempt meets (see `throttle`): its client network's, its
/// account's from that network, and its account's for the day.
struct Attempt {
    network: String,
    pair: String,
    account: String,
}

impl Attempt {
    fn new(kind: AccountKind, username: &str, network: &str) -> Self {
        let account = credentials::lockout_key(kind, username);
        Self {
            network: throttle::key("network", network),
            pair: throttle::key(
                "account-network",
                &format!("{}:{}|{network}", kind.as_str(), username.trim()),
            ),
            account,
        }
    }

    /// Reserves the attempt on each counter, or refuses it with `too_many_attempts` (giving
    /// back what it reserved on the counters before: no password was checked); the first
    /// refusal of a lock is audited, the others only counted. Answers what to say if this
    /// password is wrong and the next wrong one would lock the account.
    fn reserve(&self, ctx: &Ctx<'_>, what: &str, kind: AccountKind) -> Result<Warning, ApiError> {
        let now = ctx.now();
        let counters = [
            (&self.network, throttle::PER_NETWORK, None),
            (
                &self.pair,
                throttle::PER_ACCOUNT_AND_NETWORK,
                Some(self.account.as_str()),
            ),
            (&self.account, throttle::PER_ACCOUNT_DAY, None),
        ];
        let mut counted = [0; 3];
        for (i, (key, limit, account)) in counters.iter().enumerate() {
            let refused = match throttle::reserve(ctx.db, key, *limit, now, *account)? {
                Ok(n) => {
                    counted[i] = n;
                    continue;
                }
                Err(refused) => refused,
            };
            for (earlier, limit, _) in &counters[..i] {
                throttle::refund(ctx.db, earlier, *limit)?;
            }
            if refused.first {
                transaction(ctx.db, || {
                    ctx.audit(
                        "anonymous",
                        "sign_in_throttled",
                        None,
                        json!({ "attempt": what, "retry_after": refused.retry_after }),
                    )
                })?;
            }
            return Err(too_many_attempts(refused.retry_after));
        }
        Ok(Warning::after(counted[1], counted[2], kind))
    }

    /// The password was right: the account's counters are forgotten, and the network gets
    /// back this one attempt (and no other).
    fn succeeded(&self, ctx: &Ctx<'_>) -> Result<(), StorageError> {
        throttle::clear(ctx.db, &self.pair)?;
        throttle::clear(ctx.db, &self.account)?;
        throttle::refund(ctx.db, &self.network, throttle::PER_NETWORK)
    }
}

/// What a wrong password is told about the next one: nothing, or that it locks the account.
struct Warning(Option<String>);

impl Warning {
    /// After `pair` failures from this network and `day` from anywhere today.
    fn after(pair: i64, day: i64, kind: AccountKind) -> Self {
        let until = if throttle::PER_ACCOUNT_DAY.lock_after(day).is_some() {
            Some(match kind {
                AccountKind::Staff => "until an administrator unlocks it".to_string(),
                AccountKind::Client => {
                    "until your case manager sends you a new password".to_string()
                }
            })
        } else {
            throttle::PER_ACCOUNT_AND_NETWORK
                .lock_after(pair)
                .map(|seconds| format!("for {}", human_duration(seconds)))
        };
        Self(until.map(|until| {
            format!("If the next password is wrong too, this account is locked {until}.")
        }))
    }

    /// The refusal of a wrong password, warned.
    fn refuse(self) -> ApiError {
        match self.0 {
            None => invalid_credentials(),
            Some(warning) => ApiError::new(
                Code::InvalidCredentials,
                format!("{} {warning}", invalid_credentials().message),
            ),
        }
    }
}

/// `30 seconds`, `1 minute`, `15 minutes`, `24 hours`.
fn human_duration(seconds: i64) -> String {
    let (n, unit) = match seconds {
        s if s < 60 => (s, "second"),
        s if s < 3600 => (s / 60, "minute"),
        s => (s / 3600, "hour"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Reserves one attempt at something limited per `subject` (no account to protect), or
/// refuses it with `too_many_attempts`.
fn limit(
    ctx: &Ctx<'_>,
    scope: &str,
    subject: &str,
    limit: throttle::Limit,
) -> Result<(), ApiError> {
    match throttle::reserve(
        ctx.db,
        &throttle::key(scope, subject),
        limit,
        ctx.now(),
        None,
    )? {
        Ok(_) => Ok(()),
        Err(refused) => Err(too_many_attempts(refused.retry_after)),
    }
}

/// Signs in from client network `network` (see `request::client_network`);
/// docs/openapi.yaml lists every answer of `POST /api/auth/login`.
pub fn login(ctx: &Ctx<'_>, req: &LoginRequest, network: &str) -> Result<SignIn, ApiError> {
    let realm = Realm::parse(&req.realm)?;
    let password = Password::new(req.password.clone());
    let now = ctx.now();
    let username = req.username.trim().to_lowercase();
    let attempt = Attempt::new(realm.kind(), &username, network);
    let warning = attempt.reserve(ctx, realm.kind().as_str(), realm.kind())?;

    let mut cred = credentials::by_username(ctx.db, realm, &username)?;
    if realm == Realm::Portal
        && let Some(account) = portal_resets::claim_parked(ctx, &username, &password)?
    {
        // An emailed password whose reset was interrupted: it works, and is now the
        // credential (checked again below like any other).
        cred = credentials::by_account(ctx.db, account)?;
    }
    let right = match &cred {
        None => {
            passwords::verify_nobody(&password)?;
            None
        }
        Some(c) => {
            let typed = c.candidate(password.expose());
            match passwords::verify(&c.phc, &typed)? {
                Check::Right { rehash } => Some((c, rehash, typed)),
                Check::Wrong => None,
            }
        }
    };
    let Some((cred, rehash, typed)) = right else {
        let subject = cred.as_ref().map(|c| c.account.label());
        transaction(ctx.db, || {
            ctx.audit(
                "anonymous",
                "sign_in_failed",
                subject.as_deref(),
                json!({ "realm": req.realm }),
            )
        })?;
        return Err(warning.refuse());
    };
    attempt.succeeded(ctx)?;
    let label = cred.account.label();

    if cred.must_change {
        if cred.temp_expires_at.is_some_and(|t| t.as_second() <= now) {
            transaction(ctx.db, || {
                ctx.audit(&label, "sign_in_temporary_expired", Some(&label), json!({}))
            })?;
            return Err(ApiError::new(
                Code::TemporaryPasswordExpired,
                "This temporary password has expired. Ask your case manager to send a new one, or use Forgot password.",
            ));
        }
        let expires = now + CHANGE_TOKEN_SECONDS;
        let change_token = transaction(ctx.db, || {
            ctx.audit(&label, "sign_in_change_required", Some(&label), json!({}))?;
            tokens::issue_one_time(ctx.db, Purpose::Change, cred.account, expires)
        })?;
        return Ok(SignIn::ChangeRequired {
            change_token,
            expires_at: jiff::Timestamp::from_second(expires)
                .map(|t| t.to_string())
                .unwrap_or_default(),
        });
    }

    let new_phc = if rehash {
        Some(passwords::hash(typed.expose())?)
    } else {
        None
    };
    let token = transaction(ctx.db, || {
        credentials::record_sign_in(ctx, cred.account, new_phc.as_deref())?;
        ctx.audit(
            &label,
            "sign_in",
            Some(&label),
            json!({ "realm": req.realm, "rehashed": rehash }),
        )?;
        tokens::start_session(
            ctx.db,
            ctx.kv,
            cred.account,
            now,
            ctx.settings.session_limits(),
        )
    })?;
    let user = user_view(ctx.db, cred.account)?.ok_or_else(invalid_credentials)?;
    Ok(SignIn::Session { user, token })
}

/// Changes a password: with the change token of a forced change, or signed in with the
/// current password. Answers the user and a new session token.
pub fn change_password(
    ctx: &Ctx<'_>,
    req: &ChangeRequest,
    session: Option<&str>,
    network: &str,
) -> Result<(UserView, Token), ApiError> {
    let new = Password::new(req.new_password.clone());
    let now = ctx.now();
    if let Some(change_token) = &req.change_token {
        let invalid = invalid_change_token;
        let account = tokens::peek_one_time(ctx.db, Purpose::Change, change_token, now)?
            .ok_or_else(invalid)?;
        let cred = credentials::by_account(ctx.db, account)?.ok_or_else(invalid)?;
        check_new_password(ctx, &cred, &new)?;
        let phc = passwords::hash(new.expose())?;
        let token = transaction(ctx.db, || {
            if tokens::take_one_time(ctx.db, Purpose::Change, change_token, now)? != Some(account) {
                return Err(invalid());
            }
            Ok(replace_password(
                ctx,
                account,
                &phc,
                "password_changed",
                json!({ "via": "forced_change" }),
            )?)
        })?;
        let user = user_view(ctx.db, account)?.ok_or_else(invalid)?;
        return Ok((user, token));
    }

    let account = session
        .map(|t| tokens::authenticate(ctx.db, ctx.kv, t, now, ctx.settings.session_limits()))
        .transpose()?
        .flatten()
        .ok_or_else(not_signed_in)?;
    let Some(current) = &req.current_password else {
        return Err(ApiError::invalid(
            "current_password",
            "Enter your current password.",
        ));
    };
    // The same counters as sign-in: wrong passwords slow and lock the account whichever way
    // they were typed.
    let username = credentials::username(ctx.db, account)?.ok_or_else(not_signed_in)?;
    let attempt = Attempt::new(account.kind, &username, network);
    let warning = attempt.reserve(ctx, "password_change", account.kind)?;
    let cred = credentials::by_account(ctx.db, account)?.ok_or_else(not_signed_in)?;
    if passwords::verify(&cred.phc, &Password::new(current.clone()))? == Check::Wrong {
        let label = account.label();
        transaction(ctx.db, || {
            ctx.audit(&label, "password_change_failed", Some(&label), json!({}))
        })?;
        return Err(warning.refuse());
    }
    attempt.succeeded(ctx)?;
    check_new_password(ctx, &cred, &new)?;
    let phc = passwords::hash(new.expose())?;
    let token = transaction(ctx.db, || {
        replace_password(
            ctx,
            account,
            &phc,
            "password_changed",
            json!({ "via": "signed_in" }),
        )
    })?;
    let user = user_view(ctx.db, account)?.ok_or_else(not_signed_in)?;
    Ok((user, token))
}

fn not_signed_in() -> ApiError {
    ApiError::new(
        Code::NotSignedIn,
        "You are not signed in, or your session has ended. Sign in again.",
    )
}

/// The account of a session cookie, or 401 `not_signed_in`.
pub fn require_session(ctx: &Ctx<'_>, session: Option<&str>) -> Result<Account, ApiError> {
    let now = ctx.now();
    match session {
        Some(t) => tokens::authenticate(ctx.db, ctx.kv, t, now, ctx.settings.session_limits())?
            .ok_or_else(not_signed_in),
        None => Err(not_signed_in()),
    }
}

/// The signed-in staff member and their role: 401 without a session, 403 for a client.
pub fn require_staff(ctx: &Ctx<'_>, session: Option<&str>) -> Result<(Account, Role), ApiError> {
    let account = require_session(ctx, session)?;
    let role = crate::clients::staff_role(ctx.db, account)?;
    Ok((account, role))
}

/// `GET /api/auth/me`.
pub fn me(ctx: &Ctx<'_>, session: Option<&str>) -> Result<UserView, ApiError> {
    let account = require_session(ctx, session)?;
    user_view(ctx.db, account)?.ok_or_else(not_signed_in)
}

/// A portal client's own details, for the portal's home page.
pub fn profile(
    ctx: &Ctx<'_>,
    session: Option<&str>,
) -> Result<Option<serde_json::Value>, ApiError> {
    let account = require_session(ctx, session)?;
    if account.kind != AccountKind::Client {
        return Ok(None);
    }
    let rows = ctx.db.execute(
        "SELECT cl.first_name, cl.middle_name, cl.last_name, cl.dob, cl.email, cl.phone, c.username
         FROM clients cl JOIN credentials c ON c.owner_kind = 'client' AND c.owner_id = cl.id
         WHERE cl.clinic_id = ?1 AND cl.id = ?",
        &[account.id.into()],
    )?;
    Ok(rows.first().map(|r| {
        json!({
            "first_name": r.text(0),
            "middle_name": r.text(1),
            "last_name": r.text(2),
            "dob": r.text(3),
            "email": r.text(4),
            "phone": r.text(5),
            "username": r.text(6),
        })
    }))
}

/// `POST /api/auth/logout`: ends this session (if it was one).
pub fn logout(ctx: &Ctx<'_>, session: Option<&str>) -> Result<(), ApiError> {
    let Some(token) = session else { return Ok(()) };
    let account = tokens::authenticate(
        ctx.db,
        ctx.kv,
        token,
        ctx.now(),
        ctx.settings.session_limits(),
    )?;
    tokens::end_session(ctx.db, ctx.kv, token)?;
    if let Some(account) = account {
        let label = account.label();
        transaction(ctx.db, || {
            ctx.audit(&label, "sign_out", Some(&label), json!({}))
        })?;
    }
    Ok(())
}

/// A reset link to send: the account it is for, its username, and the token for the link.
pub struct ResetLink {
    pub account: Account,
    pub username: String,
    pub email: Email,
    pub token: Token,
    pub expires_at: i64,
}

/// Emails a forgot-password link; records the delivery, never the link.
pub fn send_reset_link(
    ctx: &Ctx<'_>,
    mail: &MailSettings,
    transport: &dyn Transport,
    link: &ResetLink,
) -> Result<(), StorageError> {
    let subject = link.account.label();
    let minutes = (link.expires_at - ctx.now()).div_euclid(60).max(1);
    let what = Recorded {
        purpose: "reset_link",
        client_id: (link.account.kind == AccountKind::Client).then_some(link.account.id),
        to: &link.email,
        subject: &subject,
        actor: "system",
        sent_action: "reset_link_sent",
        failed_action: "reset_link_failed",
    };
    deliveries::send_recorded(ctx, mail, transport, &what, |public_id| {
        mail::reset_link_email(
            mail,
            link.account.kind,
            &link.email,
            &link.username,
            link.token.expose(),
            minutes,
            public_id,
        )
    })
    .map(drop)
}

/// The most portal accounts one address gets links for (siblings sharing a parent's address).
const FORGOT_MAX_ACCOUNTS: i64 = 5;

/// `POST /api/auth/forgot`: the same answer whether or not the address is known. Each portal
/// account whose client's email on record is this address gets a reset link (older links of
/// the account stop working); the current password keeps working until a link is used.
pub fn forgot(
    ctx: &Ctx<'_>,
    mail_configured: bool,
    req: &ForgotRequest,
    network: &str,
) -> Result<Vec<ResetLink>, ApiError> {
    let email = Email::parse(&req.email).map_err(|m| ApiError::invalid("email", m))?;
    let realm = Realm::parse(&req.realm)?;
    // Fail closed, and say so: a link that can never arrive helps nobody. The answer is the
    // same for every address, so it tells nothing about accounts.
    if !mail_configured {
        eprintln!("forgot password: refused, {}", crate::mail::NOT_CONFIGURED);
        return Err(ApiError::new(
            Code::MailNotConfigured,
            "This portal cannot send email yet, so it cannot send you a link. Please contact your clinic to reset your password.",
        ));
    }
    let now = ctx.now();
    limit(ctx, "forgot-network", network, throttle::FORGOT_PER_NETWORK)?;
    limit(
        ctx,
        "forgot-email",
        email.as_ref(),
        throttle::FORGOT_PER_EMAIL,
    )?;
    let rows = match realm {
        // Only the address on record now: a username that is an old address (one a sibling
        // took, a show-once reset) belongs to whoever has that mailbox now, not to the client.
        Realm::Portal => ctx.db.execute(
            "SELECT c.owner_id, c.username FROM credentials c JOIN clients cl ON cl.id = c.owner_id
             WHERE c.clinic_id = ?1 AND c.owner_kind = 'client' AND cl.email = ?2 COLLATE NOCASE
             ORDER BY c.owner_id LIMIT ?3",
            &[email.as_ref().into(), FORGOT_MAX_ACCOUNTS.into()],
        )?,
        // A staff member's work address, while they may sign in (not a disabled one).
        Realm::Staff => ctx.db.execute(
            "SELECT c.owner_id, c.username FROM credentials c JOIN staff s ON s.id = c.owner_id
             WHERE c.clinic_id = ?1 AND c.owner_kind = 'staff' AND s.email = ?2 COLLATE NOCASE AND s.status = 'active'
             LIMIT 1",
            &[email.as_ref().into()],
        )?,
    };
    let accounts: Vec<(Account, String)> = rows
        .iter()
        .filter_map(|r| {
            Some((
                Account {
                    kind: realm.kind(),
                    id: r.int(0)?,
                },
                r.text(1)?.to_string(),
            ))
        })
        .collect();
    let expires_at = now + RESET_TOKEN_SECONDS;
    let mut links = Vec::with_capacity(accounts.len());
    for (account, username) in accounts {
        let token = transaction(ctx.db, || {
            ctx.db.execute(
                "DELETE FROM one_time_tokens WHERE clinic_id = ?1 AND owner_kind = ? AND owner_id = ? AND purpose = 'reset'",
                &[account.kind.as_str().into(), account.id.into()],
            )?;
            let label = account.label();
            ctx.audit(
                "anonymous",
                "password_reset_requested",
                Some(&label),
                json!({}),
            )?;
            tokens::issue_one_time(ctx.db, Purpose::Reset, account, expires_at)
        })?;
        links.push(ResetLink {
            account,
            username,
            email: email.clone(),
            token,
            expires_at,
        });
    }
    Ok(links)
}

fn invalid_change_token() -> ApiError {
    ApiError::new(
        Code::InvalidChangeToken,
        "This step has expired or was already completed. Sign in again with your temporary password.",
    )
}

fn invalid_reset_link() -> ApiError {
    ApiError::new(
        Code::InvalidResetToken,
        "This reset link has expired or was already used. Ask for a new one from the sign-in page.",
    )
}

/// `POST /api/auth/password-check`: a password being chosen, and whose, so that the live hint
/// applies the same rules as the server will (the account's own words included). At most one
/// of the account fields; with none, only the rules everyone shares.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordCheckRequest {
    pub new_password: String,
    /// The forced change after a temporary password.
    #[serde(default)]
    pub change_token: Option<String>,
    /// An emailed reset link.
    #[serde(default)]
    pub reset_token: Option<String>,
    /// An administrator setting this client's password.
    #[serde(default)]
    pub client_id: Option<i64>,
    /// The signed-in account changing its own.
    #[serde(default)]
    pub own: bool,
}

/// Checks a password against the policy before it is sent for real: `None` when it would be
/// accepted, or why not, in the words the server's refusal will use. Nothing is stored or
/// recorded; whether it equals the current password is left to the real request (that needs
/// the password hash, a deliberate cost).
pub fn check_password(
    ctx: &Ctx<'_>,
    req: &PasswordCheckRequest,
    session: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let chosen = [
        req.change_token.is_some(),
        req.reset_token.is_some(),
        req.client_id.is_some(),
        req.own,
    ];
    if chosen.iter().filter(|c| **c).count() > 1 {
        return Err(ApiError::invalid(
            "new_password",
            "Name at most one account: change_token, reset_token, client_id or own.",
        ));
    }
    let now = ctx.now();
    let account = if let Some(token) = &req.change_token {
        Some(
            tokens::peek_one_time(ctx.db, Purpose::Change, token, now)?
                .ok_or_else(invalid_change_token)?,
        )
    } else if let Some(token) = &req.reset_token {
        Some(
            tokens::peek_one_time(ctx.db, Purpose::Reset, token, now)?
                .ok_or_else(invalid_reset_link)?,
        )
    } else if let Some(client) = req.client_id {
        let (_, role) = require_staff(ctx, session)?;
        if role != Role::Admin
            || user_view(
                ctx.db,
                Account {
                    kind: AccountKind::Client,
                    id: client,
                },
            )?
            .is_none()
        {
            return Err(ApiError::not_found());
        }
        Some(Account {
            kind: AccountKind::Client,
            id: client,
        })
    } else if req.own {
        Some(require_session(ctx, session)?)
    } else {
        None
    };
    let own_words = match account {
        Some(account) => credentials::own_words(ctx.db, account)?,
        None => policy::OwnWords::default(),
    };
    Ok(policy::check(
        &req.new_password,
        ctx.settings.password_min_length,
        &policy::Context::chosen(&own_words),
    )
    .err()
    .map(|w| w.0))
}

/// `POST /api/auth/reset-link`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetLinkRequest {
    pub token: String,
}

/// `POST /api/auth/reset-link`: whether an emailed reset link can still be used, so that its
/// page says so before anything is typed. Asking does not use it up.
pub fn check_reset_link(ctx: &Ctx<'_>, req: &ResetLinkRequest) -> Result<(), ApiError> {
    match tokens::peek_one_time(ctx.db, Purpose::Reset, &req.token, ctx.now())? {
        Some(_) => Ok(()),
        None => Err(invalid_reset_link()),
    }
}

/// `POST /api/auth/reset`: sets a new password with a reset token, once.
pub fn reset(ctx: &Ctx<'_>, req: &ResetRequest) -> Result<(UserView, Token), ApiError> {
    let now = ctx.now();
    let invalid = invalid_reset_link;
    let account =
        tokens::peek_one_time(ctx.db, Purpose::Reset, &req.token, now)?.ok_or_else(invalid)?;
    let cred = credentials::by_account(ctx.db, account)?.ok_or_else(invalid)?;
    let new = Password::new(req.new_password.clone());
    check_new_password(
        ctx,
        &Credential {
            must_change: false,
            ..cred
        },
        &new,
    )?;
    let phc = passwords::hash(new.expose())?;
    let token = transaction(ctx.db, || {
        if tokens::take_one_time(ctx.db, Purpose::Reset, &req.token, now)? != Some(account) {
            return Err(invalid());
        }
        Ok(replace_password(
            ctx,
            account,
            &phc,
            "password_reset_completed",
            json!({}),
        )?)
    })?;
    let user = user_view(ctx.db, account)?.ok_or_else(invalid)?;
    Ok((user, token))
}

fn any_admin(db: &dyn Db) -> Result<bool, StorageError> {
    Ok(db
        .execute(
            "SELECT 1 FROM staff WHERE clinic_id = ?1 AND role = 'admin' LIMIT 1",
            &[],
        )?
        .first()
        .is_some())
}

/// `POST /api/setup`: creates the first administrator, once, with the setup secret.
pub fn setup(ctx: &Ctx<'_>, req: &SetupRequest, network: &str) -> Result<UserView, ApiError> {
    let already = || {
        ApiError::new(
            Code::AlreadySetUp,
            "Caseport is already set up; sign in as an administrator.",
        )
    };
    let Some(expected) = &ctx.settings.setup_token else {
        return Err(ApiError::new(
            Code::SetupDisabled,
            "Setup is not enabled: the operator sets the setup_token variable to allow it.",
        ));
    };
    if any_admin(ctx.db)? {
        return Err(already());
    }
    // The secret can be guessed only so fast.
    limit(ctx, "setup-network", network, throttle::SETUP_PER_NETWORK)?;
    // Compared as hashes, so the time taken says nothing about how much of it matched.
    if tokens::token_hash(&req.setup_token) != tokens::token_hash(expected.expose()) {
        transaction(ctx.db, || {
            ctx.audit("anonymous", "setup_refused", None, json!({}))
        })?;
        return Err(ApiError::new(
            Code::InvalidSetupToken,
            "The setup token is not right.",
        ));
    }
    let email = Email::parse(&req.email).map_err(|m| ApiError::invalid("email", m))?;
    let name = DisplayName::parse(&req.display_name)?;
    let own_words = policy::OwnWords::of(&[name.as_ref()], &[email.as_ref()]);
    let context = policy::Context::chosen(&own_words);
    policy::require(
        &req.password,
        ctx.settings.password_min_length,
        &context,
        "password",
    )?;
    let phc = passwords::hash(&req.password)?;
    let now = ctx.clock.now().to_string();
    let id = transaction(ctx.db, || {
        if any_admin(ctx.db)? {
            return Err(already());
        }
        let id = ctx
            .db
            .execute(
                "INSERT INTO staff (clinic_id, email, display_name, role, created_at) VALUES (?1, ?, ?, 'admin', ?) RETURNING id",
                &[email.as_ref().into(), name.as_ref().into(), now.as_str().into()],
            )?
            .first()
            .and_then(|r| r.int(0))
            .ok_or_else(ApiError::internal)?;
        credentials::create_staff(ctx, id, &email, &phc, None)?;
        let label = format!("staff:{id}");
        ctx.audit(
            &label,
            "setup_first_admin",
            Some(&label),
            json!({ "email": email.as_ref() }),
        )?;
        Ok(id)
    })?;
    user_view(
        ctx.db,
        Account {
            kind: AccountKind::Staff,
            id,
        },
    )?
    .ok_or_else(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Kv;
    use crate::testing::World;

    fn casey_login(ctx: &Ctx<'_>) -> Result<SignIn, ApiError> {
        login(
            ctx,
            &LoginRequest {
                realm: "staff".into(),
                username: "casey.manager@example.org".into(),
                password: "caseport-demo-manager".into(),
            },
            "10.0.0.1",
        )
    }

    fn casey_from(ctx: &Ctx<'_>, password: &str, network: &str) -> Result<SignIn, ApiError> {
        login(
            ctx,
            &LoginRequest {
                realm: "staff".into(),
                username: "casey.manager@example.org".into(),
                password: password.into(),
            },
            network,
        )
    }

    #[test]
    fn the_password_hint_applies_the_servers_rules_to_the_right_account() {
        let w = World::new();
        let ctx = w.ctx();
        let check = |req: PasswordCheckRequest| check_password(&ctx, &req, None);
        let plain = |p: &str| PasswordCheckRequest {
            new_password: p.into(),
            change_token: None,
            reset_token: None,
            client_id: None,
            own: false,
        };
        for weak in ["passwordpassword", "123456789012345", "short"] {
            assert!(check(plain(weak)).unwrap().is_some(), "{weak}");
        }
        let mine = "casey manager likes tea";
        assert_eq!(check(plain(mine)).unwrap(), None);
        let casey = credentials::by_username(&w.db, Realm::Staff, "casey.manager@example.org")
            .unwrap()
            .unwrap()
            .account;
        let link = tokens::issue_one_time(&w.db, Purpose::Reset, casey, ctx.now() + 60).unwrap();
        let refused = check(PasswordCheckRequest {
            reset_token: Some(link.expose().into()),
            ..plain(mine)
        })
        .unwrap()
        .unwrap();
        assert!(refused.contains("name"), "{refused}");
        // The check does not use the link up, and a wrong link is not a hint.
        assert!(
            tokens::peek_one_time(&w.db, Purpose::Reset, link.expose(), ctx.now())
                .unwrap()
                .is_some()
        );
        let forged = check(PasswordCheckRequest {
            reset_token: Some("forged".into()),
            ..plain(mine)
        });
        assert_eq!(forged.unwrap_err().code, "invalid_reset_token");
        let forged = check(PasswordCheckRequest {
            change_token: Some("forged".into()),
            ..plain(mine)
        });
        assert_eq!(forged.unwrap_err().code, "invalid_change_token");
        // An administrator's check for a client needs an administrator's session.
        let unsigned = check(PasswordCheckRequest {
            client_id: Some(1),
            ..plain(mine)
        });
        assert_eq!(unsigned.unwrap_err().code, "not_signed_in");
        let Ok(SignIn::Session { token, .. }) =
            casey_from(&ctx, "caseport-demo-manager", "10.0.0.7")
        else {
            panic!("Casey signs in");
        };
        let case_manager = check_password(
            &ctx,
            &PasswordCheckRequest {
                client_id: Some(1),
                ..plain(mine)
            },
            Some(token.expose()),
        );
        assert_eq!(case_manager.unwrap_err().code, "not_found");
    }

    #[test]
    fn the_wrong_password_before_a_lock_says_so() {
        let w = World::new();
        let ctx = w.ctx();
        let wrong = |n: usize| {
            casey_from(&ctx, "guess", "10.0.0.9")
                .err()
                .unwrap_or_else(|| panic!("attempt {n} is refused"))
                .message
        };
        for n in 1..=3 {
            assert!(!wrong(n).contains("locked"), "attempt {n}");
        }
        assert!(wrong(4).ends_with(
            "If the next password is wrong too, this account is locked for 30 seconds."
        ),);
        // Ninety-nine failures today from anywhere: the next locks it until someone acts.
        for i in 0..94 {
            let _ = casey_from(&ctx, "guess", &format!("10.1.{}.{}", i / 200, i % 200));
        }
        let warned = casey_from(&ctx, "guess", "10.2.0.1").err().unwrap();
        assert_eq!(warned.code, "invalid_credentials");
        assert!(
            warned
                .message
                .ends_with("locked until an administrator unlocks it."),
            "{}",
            warned.message
        );
    }

    #[test]
    fn wrong_passwords_from_one_network_do_not_lock_the_person_out_elsewhere() {
        let w = World::new();
        let ctx = w.ctx();
        for _ in 0..5 {
            let e = casey_from(&ctx, "a stranger's guess", "198.51.100.7")
                .err()
                .unwrap();
            assert_eq!(e.code, "invalid_credentials");
        }
        // The stranger's network is slowed down, even with the right password…
        let slowed = casey_from(&ctx, "caseport-demo-manager", "198.51.100.7")
            .err()
            .unwrap();
        assert_eq!(slowed.code, "too_many_attempts");
        assert!(slowed.retry_after.is_some_and(|s| s <= 30));
        // …Casey, elsewhere, is not.
        assert!(matches!(
            casey_from(&ctx, "caseport-demo-manager", "203.0.113.20"),
            Ok(SignIn::Session { .. })
        ));
    }

    #[test]
    fn a_hundred_failures_a_day_from_anywhere_lock_the_account_until_it_is_reset() {
        let w = World::new();
        let ctx = w.ctx();
        for i in 0..100 {
            let e = casey_from(&ctx, "guess", &format!("10.0.{}.{}", i / 250, i % 250))
                .err()
                .unwrap();
            assert_eq!(e.code, "invalid_credentials", "attempt {i}");
        }
        let locked = casey_from(&ctx, "caseport-demo-manager", "203.0.113.20")
            .err()
            .unwrap();
        assert_eq!(locked.code, "too_many_attempts");
        assert!(
            credentials::is_locked(
                &w.db,
                AccountKind::Staff,
                "casey.manager@example.org",
                ctx.now()
            )
            .unwrap()
        );
        // The refusals were counted, not written one by one.
        for i in 0..50 {
            let _ = casey_from(&ctx, "guess", &format!("203.0.113.{i}"));
        }
        let audited = w
            .raw()
            .execute(
                "SELECT count(*) FROM audit_log WHERE action = 'sign_in_throttled'",
                &[],
            )
            .unwrap()
            .first()
            .and_then(|r| r.int(0));
        assert_eq!(audited, Some(1));
    }

    #[test]
    fn signing_in_to_ones_own_account_gives_back_no_attempts_spent_on_others() {
        let w = World::new();
        let ctx = w.ctx();
        let network = "198.51.100.9";
        let guess = |user: String| {
            login(
                &ctx,
                &LoginRequest {
                    realm: "staff".into(),
                    username: user,
                    password: "spray".into(),
                },
                network,
            )
        };
        for i in 0..99 {
            assert_eq!(
                guess(format!("user{i}@example.org")).err().unwrap().code,
                "invalid_credentials"
            );
        }
        for _ in 0..10 {
            assert!(casey_from(&ctx, "caseport-demo-manager", network).is_ok());
        }
        assert_eq!(
            guess("one.more@example.org".into()).err().unwrap().code,
            "invalid_credentials"
        );
        assert_eq!(
            guess("and.another@example.org".into()).err().unwrap().code,
            "too_many_attempts"
        );
    }

    #[test]
    fn sign_in_upgrades_a_hash_with_old_parameters() {
        let w = World::new();
        use argon2::{
            Algorithm, Argon2, Params, PasswordHasher, Version, password_hash::SaltString,
        };
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 1, 1, None).unwrap(),
        );
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let old = weak
            .hash_password(b"caseport-demo-manager", &salt)
            .unwrap()
            .to_string();
        w.raw()
            .execute(
                "UPDATE credentials SET phc = ? WHERE username = 'casey.manager@example.org'",
                &[old.into()],
            )
            .unwrap();
        let ctx = w.ctx();
        assert!(matches!(casey_login(&ctx).unwrap(), SignIn::Session { .. }));
        let phc = w
            .raw()
            .execute(
                "SELECT phc FROM credentials WHERE username = 'casey.manager@example.org'",
                &[],
            )
            .unwrap()
            .first()
            .and_then(|r| r.text(0).map(str::to_string))
            .unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(matches!(casey_login(&ctx).unwrap(), SignIn::Session { .. }));
    }

    #[test]
    fn sessions_end_after_the_idle_and_the_absolute_limit() {
        let w = World::new();
        let ctx = w.ctx();
        let SignIn::Session { token, .. } = casey_login(&ctx).unwrap() else {
            panic!("no session")
        };
        let start = w.clock.0.get();
        // Active every 29 minutes: the idle limit never hits, the absolute one does.
        let mut t = start;
        while t + 29 * 60 < start + 12 * 3600 {
            t += 29 * 60;
            w.clock.0.set(t);
            assert!(
                me(&ctx, Some(token.expose())).is_ok(),
                "ended early at +{}s",
                t - start
            );
        }
        w.clock.0.set(start + 12 * 3600 + 1);
        assert_eq!(
            me(&ctx, Some(token.expose())).unwrap_err().code,
            "not_signed_in"
        );

        w.clock.0.set(start);
        let SignIn::Session { token, .. } = casey_login(&ctx).unwrap() else {
            panic!("no session")
        };
        w.clock.0.set(start + 31 * 60);
        assert_eq!(
            me(&ctx, Some(token.expose())).unwrap_err().code,
            "not_signed_in"
        );
    }

    #[test]
    fn tokens_are_stored_only_as_hashes() {
        let w = World::new();
        let ctx = w.ctx();
        let SignIn::Session { token, .. } = casey_login(&ctx).unwrap() else {
            panic!("no session")
        };
        let keys = w.kv.unscoped().keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys[0].starts_with("caseport/1/session/"), "{keys:?}");
        assert!(!keys[0].contains(token.expose()));
        assert!(
            w.kv.unscoped()
                .get(&keys[0])
                .unwrap()
                .is_some_and(|v| !String::from_utf8_lossy(&v).contains(token.expose()))
        );
    }
}
