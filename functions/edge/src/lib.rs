//! The one place that joins Caseport's rules to Spin: the storage ports on spin-sdk's SQLite
//! and key-value, the request checks, cookies, and responses with the security headers.

pub mod outbound;

use caseport_shared::api_error::{ApiError, Code};
use caseport_shared::clinics::{self, Clinic, NoClinic, Scoped, ScopedKv};
use caseport_shared::ctx::Ctx;
use caseport_shared::domain::{Account, Role};
use caseport_shared::mail::{MailSettings, MailStatus};
use caseport_shared::ports::{self, Db, Kv, Rows, StorageError, SystemClock, Value};
use caseport_shared::request::{self, Incoming};
use caseport_shared::security_headers::SECURITY_HEADERS;
use caseport_shared::settings::SettingError;
use caseport_shared::settings::Settings;
use caseport_shared::{auth, demo, schema};
use serde::Serialize;
use spin_sdk::http::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, Response, ResponseBuilder,
    ResponseOutparam,
};
use spin_sdk::{key_value, sqlite, variables};

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "__Host-caseport_session";

/// The `default` SQLite database, through `fermyon:spin/sqlite@2.0.0` (every Spin 2+ host).
///
/// When a statement meets another writer, the connection is replaced by a fresh one (a libSQL
/// server keeps answering "interrupted" on a stream it once interrupted), and the work runs
/// again: a statement outside a transaction here (`ports::autocommit`), a transaction as a
/// whole in `ports::transaction`. So it knows whether a transaction is open.
pub struct SpinDb {
    conn: std::cell::RefCell<sqlite::Connection>,
    in_transaction: std::cell::Cell<bool>,
}

impl SpinDb {
    fn open() -> Result<Self, StorageError> {
        Ok(Self {
            conn: std::cell::RefCell::new(
                sqlite::Connection::open_default()
                    .map_err(|e| StorageError::new(format!("{e:?}")))?,
            ),
            in_transaction: std::cell::Cell::new(false),
        })
    }

    fn run(
        &self,
        sql: &str,
        params: &[sqlite::Value],
    ) -> Result<sqlite::QueryResult, StorageError> {
        let result = self.conn.borrow().execute(sql, params);
        result.map_err(|e| match e {
            sqlite::Error::DatabaseFull => StorageError::full("the database is full"),
            sqlite::Error::Io(message) if contended(&message) => {
                self.reconnect();
                StorageError::contended(message)
            }
            e => StorageError::new(format!("{e:?}")),
        })
    }

    /// Swaps in a fresh connection with Caseport's settings; keeps the old one if that fails.
    /// Dropping the old one ends whatever transaction it had.
    fn reconnect(&self) {
        let Ok(fresh) = sqlite::Connection::open_default() else {
            return;
        };
        let configured = schema::configure_with(|sql| {
            fresh.execute(sql, &[]).map(|answer| {
                match answer.rows.first().and_then(|row| row.values.first()) {
                    Some(sqlite::Value::Integer(i)) => Some(*i),
                    _ => None,
                }
            })
        });
        if configured.is_err() {
            return;
        }
        *self.conn.borrow_mut() = fresh;
        self.in_transaction.set(false);
    }
}

/// Whether a failure says another writer held the database. Spin hands every engine error
/// over as text: a local file's "database is locked" (`SQLITE_BUSY`), or a libSQL server's
/// `SQLITE_BUSY` or `SQLITE_INTERRUPT` (it interrupts and rolls back a transaction that waited
/// for its lock).
fn contended(message: &str) -> bool {
    [
        "database is locked",
        "SQLITE_BUSY",
        "SQLITE_LOCKED",
        "SQLITE_INTERRUPT",
    ]
    .iter()
    .any(|m| message.contains(m))
}

impl Db for SpinDb {
    fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, StorageError> {
        let params: Vec<sqlite::Value> = params
            .iter()
            .map(|v| match v {
                Value::Null => sqlite::Value::Null,
                Value::Integer(i) => sqlite::Value::Integer(*i),
                Value::Real(f) => sqlite::Value::Real(*f),
                Value::Text(t) => sqlite::Value::Text(t.clone()),
                Value::Blob(b) => sqlite::Value::Blob(b.clone()),
            })
            .collect();
        let keyword = sql.split_whitespace().next().unwrap_or_default();
        // `BEGIN` is retried by `ports::transaction`, with the rest of the transaction.
        let result = if self.in_transaction.get() || keyword.eq_ignore_ascii_case("BEGIN") {
            self.run(sql, &params)
        } else {
            ports::autocommit(|| self.run(sql, &params))
        };
        if keyword.eq_ignore_ascii_case("ROLLBACK")
            || (keyword.eq_ignore_ascii_case("COMMIT") && result.is_ok())
        {
            self.in_transaction.set(false);
        }
        let result = result?;
        if keyword.eq_ignore_ascii_case("BEGIN") {
            self.in_transaction.set(true);
        }
        Ok(Rows {
            rows: result
                .rows
                .into_iter()
                .map(|r| {
                    r.values
                        .into_iter()
                        .map(|v| match v {
                            sqlite::Value::Null => Value::Null,
                            sqlite::Value::Integer(i) => Value::Integer(i),
                            sqlite::Value::Real(f) => Value::Real(f),
                            sqlite::Value::Text(t) => Value::Text(t),
                            sqlite::Value::Blob(b) => Value::Blob(b),
                        })
                        .collect()
                })
                .collect(),
        })
    }
}

/// The `default` key-value store.
pub struct SpinKv(key_value::Store);

fn kv_error(e: key_value::Error) -> StorageError {
    match e {
        key_value::Error::StoreTableFull => StorageError::full("the key-value store is full"),
        e => StorageError::new(format!("{e:?}")),
    }
}

impl Kv for SpinKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.0.get(key).map_err(kv_error)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.0.set(key, value).map_err(kv_error)
    }

    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.0.delete(key).map_err(kv_error)
    }
}

/// What a request handler works with: the clinic's storage, the clock and the settings.
pub struct Env {
    /// The request's clinic's view of the database (`clinics::Scoped`).
    pub db: Scoped<SpinDb>,
    pub kv: ScopedKv<SpinKv>,
    pub settings: Settings,
    pub clock: SystemClock,
    pub clinic: Clinic,
}

/// A Spin variable, or the clinic's own value where it sets one.
fn variable(clinic: &Clinic, name: &str) -> Option<String> {
    clinic
        .overrides
        .variable(name)
        .or_else(|| variables::get(name).ok())
}

/// Storage opened and up to date, with the deployment's settings: no clinic chosen yet.
struct Storage {
    db: SpinDb,
    kv: SpinKv,
    settings: Settings,
}

impl Storage {
    /// Opens storage, reads the settings, and brings the schema (and, if asked for, the demo
    /// data) up to date.
    fn open() -> Result<Self, ApiError> {
        let settings = Settings::from_variables(|name| variables::get(name).ok())
            .map_err(|why| ApiError::misconfigured(&why))?;
        // A failure before the first write means the storage could not be reached (a
        // database or key-value server that is down): nothing was changed.
        let unreachable = |e: StorageError| e.before_any_write();
        let db = SpinDb::open().map_err(unreachable)?;
        let kv = SpinKv(
            key_value::Store::open_default()
                .map_err(|e| unreachable(StorageError::new(format!("{e:?}"))))?,
        );
        schema::open(&db)?;
        if settings.demo_data {
            demo::load_if_empty(&db, &SystemClock)?;
        }
        Ok(Self { db, kv, settings })
    }
}

impl Env {
    /// Opens storage ([`Storage::open`]) and finds the clinic `host` is for: 404 for a host
    /// no clinic has, 403 for a suspended clinic. Components reach it through
    /// [`api_request`] or [`staff_request`].
    fn open(host: Option<&str>) -> Result<Self, ApiError> {
        let Storage {
            db,
            kv,
            mut settings,
        } = Storage::open()?;
        let clinic = match clinics::resolve(&db, host, settings.operator_host.as_deref())? {
            Ok(clinic) => clinic,
            Err(NoClinic::UnknownHost) => return Err(ApiError::not_found()),
            Err(NoClinic::Suspended) => {
                return Err(ApiError::new(
                    Code::Forbidden,
                    "This clinic's Caseport is suspended. Please contact the clinic.",
                ));
            }
        };
        if clinic.overrides.sets_rules() {
            settings = Settings::from_variables(|name| variable(&clinic, name))
                .map_err(|why| ApiError::misconfigured(&why))?;
        }
        Ok(Self {
            db: Scoped::new(db, clinic.id),
            kv: ScopedKv::new(kv, clinic.id),
            settings,
            clock: SystemClock,
            clinic,
        })
    }

    /// The mail variables as read (only the components that send mail are granted them):
    /// `None` when no provider is configured, an error naming a malformed variable.
    pub fn read_mail(&self) -> Result<Option<MailSettings>, SettingError> {
        MailSettings::from_variables(
            |name| variable(&self.clinic, name),
            std::time::Duration::from_secs(self.settings.mail_timeout_seconds.unsigned_abs()),
        )
    }

    /// The mail settings, `None` when no provider is configured; a malformed value is a
    /// 500 `misconfigured` whose log line names the variable.
    pub fn mail(&self) -> Result<Option<MailSettings>, ApiError> {
        self.read_mail()
            .map_err(|why| ApiError::misconfigured(&why))
    }

    /// The rules' context: the request's clinic's.
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            db: &self.db,
            kv: &self.kv,
            clock: &self.clock,
            settings: &self.settings,
        }
    }

    /// A context over every clinic's data, for the deployment's own work: delivery
    /// webhooks, which report on emails of any clinic (`reset::apply_events`).
    pub fn deployment_ctx(&self) -> Ctx<'_> {
        Ctx {
            db: self.db.unscoped(),
            kv: self.kv.unscoped(),
            clock: &self.clock,
            settings: &self.settings,
        }
    }
}

/// An API request past the checks every API request needs, in the order that is a
/// security rule: the Origin check (CSRF) first, before anything is opened or read; then
/// storage and settings. The only way components reach storage.
pub struct ApiRequest<'a> {
    pub req: &'a Request,
    pub incoming: Incoming<'a>,
    pub env: Env,
}

/// What the deployment as a whole answers with (`GET /api/status`, whatever the host name):
/// its own settings and mail variables, no clinic's.
pub struct Deployment {
    pub settings: Settings,
    pub mail: Result<Option<MailSettings>, SettingError>,
}

/// Checks the Origin of `req`, then opens storage (so that a first request migrates it, as
/// the start-up status report does) and reads the deployment's settings.
pub fn deployment_request(req: &Request) -> Result<Deployment, ApiError> {
    incoming(req).check_origin()?;
    let storage = Storage::open()?;
    let mail = MailSettings::from_variables(
        |name| variables::get(name).ok(),
        std::time::Duration::from_secs(storage.settings.mail_timeout_seconds.unsigned_abs()),
    );
    Ok(Deployment {
        settings: storage.settings,
        mail,
    })
}

/// Checks the Origin of `req`, then opens storage and settings, and finds its clinic.
pub fn api_request(req: &Request) -> Result<ApiRequest<'_>, ApiError> {
    let incoming = incoming(req);
    incoming.check_origin()?;
    let env = Env::open(request_host(req))?;
    Ok(ApiRequest { req, incoming, env })
}

impl ApiRequest<'_> {
    /// The rules' context.
    pub fn ctx(&self) -> Ctx<'_> {
        self.env.ctx()
    }

    /// The client's network, for per-client limits: the peer, or behind a proxy listed in
    /// `trusted_proxies` the client that proxy names in `X-Forwarded-For`.
    pub fn client_network(&self) -> String {
        request::client_network(
            self.req.header("spin-client-addr").unwrap_or("unknown"),
            self.req.header("x-forwarded-for"),
            &self.env.settings.trusted_proxies,
        )
    }

    /// The session token from the cookie, if any.
    pub fn session(&self) -> Option<String> {
        session_token(self.req)
    }

    /// The body as JSON (413, 415, 400 or 422 naming the field).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.incoming.json()
    }
}

/// A signed-in staff member's API request: [`api_request`], then the session, which must be
/// a staff member's (401 without one, 403 for a portal client).
pub struct StaffRequest<'a> {
    pub api: ApiRequest<'a>,
    pub me: Account,
    pub role: Role,
}

/// The checks of [`api_request`], then the staff member's session.
pub fn staff_request(req: &Request) -> Result<StaffRequest<'_>, ApiError> {
    let api = api_request(req)?;
    let (me, role) = auth::require_staff(&api.ctx(), api.session().as_deref())?;
    Ok(StaffRequest { api, me, role })
}

impl StaffRequest<'_> {
    /// The rules' context.
    pub fn ctx(&self) -> Ctx<'_> {
        self.api.ctx()
    }
}

/// An operator's request: [`staff_request`] on the operators' host name, by one of its
/// administrators. Anything else is the same 404 as an address that does not exist.
pub fn operator_request(req: &Request) -> Result<StaffRequest<'_>, ApiError> {
    let api = api_request(req)?;
    if api.env.clinic.id != clinics::OPERATORS {
        return Err(ApiError::not_found());
    }
    let (me, role) = auth::require_staff(&api.ctx(), api.session().as_deref())?;
    if role != Role::Admin {
        return Err(ApiError::not_found());
    }
    Ok(StaffRequest { api, me, role })
}

/// Whether mail is configured, from `mail_provider` alone (for Client Information, which is
/// granted no other mail variable).
pub fn mail_provider_status() -> MailStatus {
    MailStatus::of_provider(variables::get("mail_provider").ok().as_deref())
}

/// The host name and port the request was addressed to: the authority of `spin-full-url`,
/// which the host writes from the request's `Host` (wasi:http keeps `host` out of the
/// headers a component sees).
fn request_host(req: &Request) -> Option<&str> {
    let url = req.header("spin-full-url")?;
    let rest = url.split_once("://")?.1;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// The parts of a request the shared checks read.
fn incoming(req: &Request) -> Incoming<'_> {
    Incoming {
        method: method_name(req),
        full_url: req.header("spin-full-url").unwrap_or_default(),
        content_type: req.header("content-type"),
        origin: req.header("origin"),
        sec_fetch_site: req.header("sec-fetch-site"),
        body: req.body(),
    }
}

fn method_name(req: &Request) -> &'static str {
    match req.method() {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
        _ => "OTHER",
    }
}

/// The `:id` of the matched route, as a client id; anything else is not found.
pub fn client_id(req: &Request) -> Result<i64, ApiError> {
    path_id(req, "id")
}

/// The `:name` of the matched route as a row id (a positive whole number); anything else is
/// not found.
pub fn path_id(req: &Request, name: &str) -> Result<i64, ApiError> {
    req.header(&format!("spin-path-match-{name}"))
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(ApiError::not_found)
}

/// The session token from the cookie, if any.
fn session_token(req: &Request) -> Option<String> {
    req.header("cookie")?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a new session. The `__Host-` prefix makes browsers keep it only when it
/// is `Secure`, for this host alone (no `Domain`) and for every path: no sibling subdomain or
/// plain-HTTP page can set or shadow it. Browsers accept `Secure` on http://localhost and
/// http://127.0.0.1 too, so the local run works as production does.
pub fn session_cookie(token: &str, max_age: i64) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn cleared_cookie() -> String {
    session_cookie("", 0)
}

/// A response builder with the status and the security headers already set.
pub fn builder(status: u16) -> ResponseBuilder {
    let mut b = Response::builder();
    b.status(status);
    for (name, value) in SECURITY_HEADERS {
        b.header(*name, *value);
    }
    b
}

/// A JSON response. API answers are never cached.
pub fn json<T: Serialize>(status: u16, value: &T) -> Response {
    json_with(status, value, &[])
}

/// A JSON response with extra headers (such as `Set-Cookie`, or a more precise
/// `Content-Type` of JSON).
pub fn json_with<T: Serialize>(status: u16, value: &T, headers: &[(&str, String)]) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut b = builder(status);
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                b.header("content-type", "application/json; charset=utf-8");
            }
            b.header("cache-control", "no-store")
                // A known length: one write, not chunks.
                .header("content-length", body.len().to_string());
            for (k, v) in headers {
                b.header(*k, v.as_str());
            }
            b.body(body).build()
        }
        Err(_) => error(&ApiError::internal()),
    }
}

/// The JSON error shape, with its status (and `Retry-After` when the error has one).
pub fn error(e: &ApiError) -> Response {
    let mut b = builder(e.status());
    b.header("content-type", "application/json; charset=utf-8")
        .header("cache-control", "no-store");
    if let Some(seconds) = e.retry_after {
        b.header("retry-after", seconds.to_string());
    }
    if let Some(methods) = e.allow {
        b.header("allow", methods.join(", "));
    }
    b.body(e.to_json()).build()
}

/// A request as the components read it: its method, path and query, its headers as wasi:http
/// lists them, and its body.
pub struct Request {
    method: Method,
    path_with_query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Request {
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.path_with_query
            .split_once('?')
            .map_or(self.path_with_query.as_str(), |(path, _)| path)
    }

    /// The query, without its `?`; empty when there is none.
    pub fn query(&self) -> &str {
        self.path_with_query
            .split_once('?')
            .map_or("", |(_, query)| query)
    }

    /// The header called `name` (any case), if its value is UTF-8; of several, the last. The
    /// runtime adds its `spin-*` headers after any of the same name a client sent (as Spin
    /// does), so the last is the runtime's: a client cannot forge a route parameter, its own
    /// address or the URL the Origin check compares with (spin-sdk's `Request` reads so too).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// Reads a request: its method, path and headers, and its body unless it is a GET or a HEAD
/// (which carry none that Caseport reads). Each part is a call across the component boundary,
/// and a body's is several (a stream, then a poll that waits on the host's body task, even
/// for the empty body of a GET): with spin-sdk's conversion, which reads it all, and its sink
/// for the answer, a static page took half as long again (docs/BENCHMARKS.md). The headers
/// stay the list they arrive as (a handful, each looked up once or twice) and the path is
/// not parsed as a URI: spin-sdk's `Request` hashed every header into a map and parsed the
/// whole address, on every call.
pub async fn read_request(incoming: IncomingRequest) -> Result<Request, ApiError> {
    let method = incoming.method();
    let mut request = Request {
        path_with_query: incoming
            .path_with_query()
            .unwrap_or_else(|| "/".to_string()),
        headers: incoming.headers().entries(),
        body: Vec::new(),
        method,
    };
    if matches!(request.method, Method::Get | Method::Head) {
        return Ok(request);
    }
    match incoming.into_body().await {
        Ok(body) => {
            request.body = body;
            Ok(request)
        }
        Err(_) => Err(ApiError::new(
            Code::BadRequest,
            "The request could not be read; send it again.",
        )),
    }
}

/// Serves a request with `answer`.
pub async fn serve(
    incoming: IncomingRequest,
    out: ResponseOutparam,
    answer: impl FnOnce(&Request) -> Result<Response, ApiError>,
) {
    serve_then(
        incoming,
        out,
        |req| answer(req).map(|response| (response, None)),
        |()| {},
    )
    .await;
}

/// Serves a request whose work may go on after its answer: `answer` gives the response and
/// perhaps the rest of the work, which `after` does once the client has the response (the
/// host keeps the instance until then, within the request time limit).
pub async fn serve_then<T>(
    incoming: IncomingRequest,
    out: ResponseOutparam,
    answer: impl FnOnce(&Request) -> Result<(Response, Option<T>), ApiError>,
    after: impl FnOnce(T),
) {
    let (response, rest) = match read_request(incoming).await.and_then(|req| answer(&req)) {
        Ok((response, rest)) => (response, rest),
        Err(e) => (error(&e), None),
    };
    send(out, response);
    if let Some(rest) = rest {
        after(rest);
    }
}

/// Hands `response` to the client through `out` and returns, so a handler can go on working
/// after the client has its answer (the host keeps the instance until the handler returns).
pub fn send(out: ResponseOutparam, response: Response) {
    let fields = response
        .headers()
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    send_parts(out, *response.status(), fields, response.body());
}

/// Hands a response of `status`, `fields` (every header, security headers included) and
/// `body` to the client: one call for its head and, for a body of up to 4096 bytes (the most
/// one blocking write of wasi:io may carry), one for the body; a larger body is written as
/// fast as the host takes it, then flushed.
pub fn send_parts(out: ResponseOutparam, status: u16, fields: Vec<(String, Vec<u8>)>, body: &[u8]) {
    let outgoing = Fields::from_list(&fields).map(OutgoingResponse::new);
    let Ok(outgoing) = outgoing.map_err(|e| eprintln!("could not form a {status} response: {e:?}"))
    else {
        let fallback = OutgoingResponse::new(Fields::new());
        let _ = fallback.set_status_code(500);
        out.set(fallback);
        return;
    };
    let _ = outgoing.set_status_code(status);
    let Ok(body_out) = outgoing.body() else {
        return;
    };
    out.set(outgoing);
    if let Ok(stream) = body_out.write() {
        let written = if body.len() <= 4096 {
            stream.blocking_write_and_flush(body)
        } else {
            // As fast as the host takes it, waiting while it takes nothing; then flushed.
            let mut rest = body;
            loop {
                match stream.check_write() {
                    Ok(_) if rest.is_empty() => break stream.blocking_flush(),
                    Ok(0) => stream.subscribe().block(),
                    Ok(room) => {
                        let n = rest.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                        if let Err(e) = stream.write(&rest[..n]) {
                            break Err(e);
                        }
                        rest = &rest[n..];
                    }
                    Err(e) => break Err(e),
                }
            }
        };
        if let Err(e) = written {
            eprintln!("the client went away before the answer was sent: {e:?}");
            return;
        }
    }
    let _ = OutgoingBody::finish(body_out, None);
}
