//! The application at run time: one engine, one pre-instantiated component per manifest
//! entry, and a fresh instance in a fresh store for every request, as Spin does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, PoolingAllocationConfig, ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::SpinHost;
use crate::compile_cache;
use crate::key_value::KeyValue;
use crate::manifest::Manifest;
use crate::outbound_http::{AllowedHosts, OutboundHooks};
use crate::router::{Route, RouteMatch, Router};
use crate::runtime_config::RuntimeConfig;
use crate::spin_ctx::{Grants, SpinData, SpinView, Stores};
use crate::sqlite::Databases;
use crate::variables::Resolver;

/// How long an epoch lasts; the request time limit is counted in epochs.
const EPOCH: Duration = Duration::from_millis(10);

/// Per-request limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear memory one instance may grow to.
    pub memory_bytes: usize,
    /// Wall-clock time a request may take before it is stopped.
    pub request_timeout: Duration,
    /// Largest request body accepted.
    pub max_request_body: usize,
    /// Instances that may exist at once (requests in flight, chained calls included).
    pub max_instances: u32,
    /// Requests one component may run at once; more wait up to `queue_timeout`, then 503.
    pub max_concurrent: usize,
    /// How long a request waits for its component to have room.
    pub queue_timeout: Duration,
    /// Open connections at once; more wait to be accepted.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (and how long an idle
    /// kept-alive connection stays open).
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// More names a loopback listener answers, besides localhost and loopback addresses.
    pub allowed_hosts: Vec<String>,
}

impl Limits {
    /// The defaults of `caseport up`.
    pub fn defaults() -> Self {
        Self {
            memory_bytes: 128 << 20,
            request_timeout: Duration::from_secs(30),
            max_request_body: 1 << 20,
            max_instances: 128,
            max_concurrent: 16,
            queue_timeout: Duration::from_secs(2),
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            allowed_hosts: Vec::new(),
        }
    }
}

/// Where the runtime keeps its files.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub state: PathBuf,
    pub cache: PathBuf,
}

struct Loaded {
    /// The pre-instantiated component, once compiled (see [`App::load`]).
    pre: Arc<tokio::sync::watch::Sender<Option<ProxyPre<RequestState>>>>,
    grants: Arc<Grants>,
    /// wasi:sockets' check of each address the component uses (its `allowed_outbound_hosts`).
    socket_check: Arc<SocketCheck>,
    /// Room for the requests this component may run at once.
    room: Arc<tokio::sync::Semaphore>,
}

/// The check wasi:sockets runs for each socket address a component uses.
type SocketCheck = dyn Fn(
        std::net::SocketAddr,
        wasmtime_wasi::sockets::SocketAddrUse,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + Sync>>
    + Send
    + Sync;

/// A running application.
pub struct App {
    engine: Engine,
    components: Vec<Loaded>,
    /// The components requests wait for while they compile after a cold start, in order.
    wanted: Arc<std::sync::Mutex<Vec<usize>>>,
    by_name: HashMap<String, usize>,
    pub router: Router,
    stores: Arc<Stores>,
    pub limits: Limits,
    /// The components some `[[trigger.http]]` names (private ones included): the only ones
    /// a chained request may reach, as in Spin.
    triggered: Vec<bool>,
    /// The address the server listens on, once bound: where `self` requests go.
    local_addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// `[application]` name and version, for `/.well-known/spin/info`.
    pub info: AppInfo,
}

/// What `/.well-known/spin/info` tells.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppInfo {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// How a request ended, for the log and the status code.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Answered,
    Trapped,
    OutOfMemory,
    TimedOut,
    Busy,
}

/// The store data of one request.
pub struct RequestState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    grants: Arc<Grants>,
    stores: Arc<Stores>,
    limiter: MemoryLimiter,
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

fn spin_view(state: &mut RequestState) -> SpinView<'_> {
    SpinView {
        table: &mut state.table,
        grants: &state.grants,
        stores: &state.stores,
    }
}

/// Refuses memory growth past the limit and remembers that it did, so a trap that follows
/// can be reported as out-of-memory.
struct MemoryLimiter {
    max: usize,
    refused: Arc<AtomicBool>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.refused.store(true, Ordering::Relaxed);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// How much of each instance slot's memory and tables stays resident between requests.
const KEEP_RESIDENT: usize = 24 << 20;
/// How many slots are given back to the kernel at once.
const DECOMMIT_BATCH: usize = 16;

fn engine(limits: &Limits) -> Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(limits.max_instances)
        .total_core_instances(limits.max_instances * 8)
        .total_memories(limits.max_instances * 2)
        .total_tables(limits.max_instances * 4)
        .total_stacks(limits.max_instances)
        .max_memory_size(limits.memory_bytes)
        // A slot is reset for its next instance by rewriting what the last one touched
        // (with Linux's pagemap, only the dirty pages) instead of giving the pages back to
        // the kernel: no page faults and no TLB shootdowns between the worker threads on
        // every request. What is past these sizes is given back, in batches.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .decommit_batch_size(DECOMMIT_BATCH)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = Config::new();
    config.epoch_interruption(true).allocation_strategy(pool);
    if std::env::var_os("CASEPORT_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("cannot configure the wasm engine")
}

impl App {
    /// Loads every component of the manifest: compiles (or reads compiled code from the
    /// cache), links and pre-instantiates it.
    pub fn load(
        manifest: &Manifest,
        resolver: &Resolver,
        dirs: &Dirs,
        runtime_config: &RuntimeConfig,
        limits: Limits,
    ) -> Result<Arc<Self>> {
        let engine = engine(&limits)?;
        let mut linker: Linker<RequestState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        SpinHost::add_to_linker::<_, SpinData>(&mut linker, spin_view)?;

        let stores = Arc::new(Stores {
            key_value: KeyValue::open(&dirs.state, runtime_config)?,
            sqlite: Databases::open(&dirs.state, runtime_config)?,
        });
        let file = manifest.path.display().to_string();
        for (name, decl) in &manifest.components {
            for label in &decl.key_value_stores {
                if !stores.key_value.has(label) {
                    bail!(
                        "{file}: component.{name}.key_value_stores: no store \"{label}\"; define [key_value_store.{label}] in a runtime config (--runtime-config-file)"
                    );
                }
            }
            for label in &decl.sqlite_databases {
                if !stores.sqlite.has(label) {
                    bail!(
                        "{file}: component.{name}.sqlite_databases: no database \"{label}\"; define [sqlite_database.{label}] in a runtime config (--runtime-config-file)"
                    );
                }
            }
        }

        let mut components = Vec::new();
        let mut by_name = HashMap::new();
        let mut sources = Vec::new();
        for (name, decl) in &manifest.components {
            let source = manifest.source_path(decl);
            // What can be checked without compiling is checked now, before serving: that
            // the file is there and a component (or a module that becomes one), and that it
            // imports nothing this runtime lacks.
            let bytes = read_component(&source).with_context(|| {
                let fix = match &decl.build {
                    Some(b) => {
                        format!("build it with `caseport up --build` (runs `{}`)", b.command)
                    }
                    None => "build it, or fix the path".to_string(),
                };
                format!(
                    "{file}: component.{name}.source = \"{}\": {fix}",
                    decl.source
                )
            })?;
            // A core module becomes a component once, here; the compile (or the cache) gets
            // the component.
            let at = || format!("{file}: component.{name}.source = \"{}\"", decl.source);
            let made = match crate::componentize::component_bytes(&bytes).with_context(at)? {
                std::borrow::Cow::Owned(component) => Some(component),
                std::borrow::Cow::Borrowed(_) => None,
            };
            let bytes = made.unwrap_or(bytes);
            let missing = unprovided_imports(&bytes).with_context(at)?;
            if !missing.is_empty() {
                bail!(
                    "{file}: component.{name} imports {}, which caseport up does not provide (it provides wasi 0.2, wasi:http, and Spin's key-value, SQLite and variables); run it under the Spin CLI",
                    missing.join(", ")
                );
            }
            sources.push((name.clone(), bytes));
            // As Spin (4.1) does, an entry whose template resolves to nothing is skipped (an
            // optional endpoint); an empty literal stays an error.
            let mut hosts: Vec<String> = Vec::new();
            for entry in &decl.allowed_outbound_hosts {
                let resolved = resolver
                    .expand(entry)
                    .with_context(|| format!("{file}: component.{name}.allowed_outbound_hosts"))?;
                let empty = matches!(resolved.as_str(), "" | "http://" | "https://");
                if !(empty && entry.contains("{{")) {
                    hosts.push(resolved);
                }
            }
            let grants =
                Grants {
                    component: name.clone(),
                    key_value_stores: decl.key_value_stores.clone(),
                    sqlite_databases: decl.sqlite_databases.clone(),
                    variables: resolver.component_values(name, &file, &decl.variables)?,
                    allowed_outbound_hosts: Arc::new(AllowedHosts::parse(&hosts).with_context(
                        || format!("{file}: component.{name}.allowed_outbound_hosts"),
                    )?),
                    environment: decl.environment.clone().into_iter().collect(),
                };
            let socket_check: Arc<SocketCheck> = Arc::new(
                grants
                    .allowed_outbound_hosts
                    .clone()
                    .socket_check(name.clone()),
            );
            by_name.insert(name.clone(), components.len());
            components.push(Loaded {
                pre: Arc::new(tokio::sync::watch::Sender::new(None)),
                grants: Arc::new(grants),
                socket_check,
                room: Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent.max(1))),
            });
        }

        let mut router = Router::default();
        for trigger in &manifest.triggers {
            if let (Some(route), Some(&index)) = (&trigger.route, by_name.get(&trigger.component)) {
                if route.based().starts_with("/.well-known/spin/") {
                    eprintln!(
                        "Warning: route {} is never reached: the runtime answers /.well-known/spin/ itself, as Spin does",
                        route.text()
                    );
                }
                router.add(route.clone(), index);
            }
        }

        // Compiling is most of a cold start (seconds on two cores; a cached start takes
        // milliseconds). The component that answers `/` is made ready now, so the first page
        // does not wait for the others; they are compiled after, in the background, and a
        // request to one waits until it is ready.
        let first = router.find("/").map(|(_, index, _)| index);
        let linker = Arc::new(linker);
        let compile = {
            let engine = engine.clone();
            let linker = linker.clone();
            let cache = dirs.cache.clone();
            let file = file.clone();
            move |name: &str, bytes: &[u8]| -> Result<ProxyPre<RequestState>> {
                let component = compile_cache::component(&engine, bytes, &cache)
                    .with_context(|| format!("{file}: component.{name}"))?;
                let pre = linker.instantiate_pre(&component).map_err(anyhow::Error::from).with_context(|| {
                    format!("{file}: component.{name}: it imports something this runtime does not provide")
                })?;
                ProxyPre::new(pre).map_err(anyhow::Error::from).with_context(|| {
                    format!("{file}: component.{name}: it does not export wasi:http/incoming-handler")
                })
            }
        };
        let mut later = Vec::new();
        for (index, (name, bytes)) in sources.into_iter().enumerate() {
            let ready = components[index].pre.clone();
            if Some(index) == first {
                ready.send_replace(Some(compile(&name, &bytes)?));
            } else {
                later.push((index, name, bytes, ready));
            }
        }
        // The rest in manifest order, except that one a request waits for goes next.
        let wanted: Arc<std::sync::Mutex<Vec<usize>>> = Arc::default();
        let asked = wanted.clone();
        std::thread::Builder::new()
            .name("compile".into())
            .spawn(move || {
                while !later.is_empty() {
                    let next = asked
                        .lock()
                        .ok()
                        .and_then(|w| {
                            w.iter()
                                .find_map(|i| later.iter().position(|(index, ..)| index == i))
                        })
                        .unwrap_or(0);
                    let (_, name, bytes, ready) = later.remove(next);
                    match compile(&name, &bytes) {
                        Ok(pre) => {
                            ready.send_replace(Some(pre));
                        }
                        // As a start that fails: the application cannot run as declared.
                        Err(e) => {
                            eprintln!("Error: {e:#}");
                            std::process::exit(1);
                        }
                    }
                }
            })
            .context("cannot start the compiler thread")?;

        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH);
                }
            })
            .context("cannot start the epoch timer")?;

        let mut triggered = vec![false; components.len()];
        for trigger in &manifest.triggers {
            if let Some(&index) = by_name.get(&trigger.component) {
                triggered[index] = true;
            }
        }
        Ok(Arc::new(Self {
            engine,
            components,
            wanted,
            by_name,
            router,
            stores,
            limits,
            triggered,
            local_addr: std::sync::OnceLock::new(),
            info: AppInfo {
                name: manifest.name.clone(),
                version: manifest.version.clone(),
            },
        }))
    }

    /// Records the address the server listens on.
    pub fn set_local_addr(&self, addr: std::net::SocketAddr) {
        let _ = self.local_addr.set(addr);
    }

    /// The address the server listens on, once bound.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.local_addr.get().copied()
    }

    /// The component a chained request to `<name>.spin.internal` reaches: one that exists and
    /// has an HTTP trigger.
    pub fn chain_target(&self, name: &str) -> Option<usize> {
        self.component_index(name)
            .filter(|i| self.triggered.get(*i).copied().unwrap_or(false))
    }

    /// Where the `default` key-value store and database keep their data, when a component
    /// uses them: the lines Spin prints at start.
    pub fn storage_summary(&self) -> Vec<String> {
        let used = |pick: fn(&Grants) -> &Vec<String>| {
            self.components
                .iter()
                .any(|c| pick(&c.grants).iter().any(|l| l == "default"))
        };
        let mut lines = Vec::new();
        if used(|g| &g.sqlite_databases)
            && let Some(s) = self.stores.sqlite.summary("default")
        {
            lines.push(format!("Storing default SQLite data to {s}."));
        }
        if used(|g| &g.key_value_stores)
            && let Some(s) = self.stores.key_value.summary("default")
        {
            lines.push(format!("Storing default key-value data to {s}."));
        }
        lines
    }

    /// The grants of component `index`.
    pub fn grants(&self, index: usize) -> &Grants {
        &self.components[index].grants
    }

    /// The index of the component called `name`.
    pub fn component_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Serves a service-chained request (from another component) with component `index`.
    pub async fn chain(
        self: Arc<Self>,
        index: usize,
        mut request: http::Request<Bytes>,
    ) -> http::Response<HyperOutgoingBody> {
        // As Spin: the outbound request lost its `Host`, so the URL names `localhost`; the
        // route is the synthetic `/...` with the whole path as path info, and the client
        // address is the unspecified one.
        request.headers_mut().remove(http::header::HOST);
        let path = request.uri().path().to_string();
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or_else(|| path.clone(), |p| p.as_str().to_string());
        let full_url = format!("http://localhost{path_and_query}");
        set_spin_headers(
            request.headers_mut(),
            &SpinHeaders {
                full_url: &full_url,
                path_info: &path,
                matched_route: "/...",
                raw_component_route: "/...",
                component_route: "",
                client_addr: "0.0.0.0:0",
                params: &[],
            },
        );
        let (response, _) = Box::pin(self.dispatch(index, request)).await;
        response
    }

    /// Component `index`, pre-instantiated: at once when it is compiled, else when it is.
    async fn ready(&self, index: usize) -> ProxyPre<RequestState> {
        let ready = &self.components[index].pre;
        if let Some(pre) = ready.borrow().as_ref() {
            return pre.clone();
        }
        if let Ok(mut wanted) = self.wanted.lock()
            && !wanted.contains(&index)
        {
            wanted.push(index);
        }
        let mut watch = ready.subscribe();
        loop {
            if let Ok(pre) = watch.wait_for(Option::is_some).await
                && let Some(pre) = pre.as_ref()
            {
                return pre.clone();
            }
            // The sender lives as long as the app; should it ever go, wait for good.
            std::future::pending::<()>().await;
        }
    }

    /// A fresh store for one request to component `index`, with its limits set.
    fn new_store(self: &Arc<Self>, index: usize, refused: Arc<AtomicBool>) -> Store<RequestState> {
        let loaded = &self.components[index];
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout().inherit_stderr();
        // TCP and UDP as Spin allows them: to what allowed_outbound_hosts names; no name
        // lookup (a guest connects to addresses), as in Spin.
        let check = loaded.socket_check.clone();
        wasi.allow_tcp(true)
            .allow_udp(true)
            .socket_addr_check(move |addr, used| check(addr, used));
        for (k, v) in &loaded.grants.environment {
            wasi.env(k, v);
        }
        let state = RequestState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                app: self.clone(),
                component: index,
            },
            grants: loaded.grants.clone(),
            stores: self.stores.clone(),
            limiter: MemoryLimiter {
                max: self.limits.memory_bytes,
                refused,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Every epoch the guest yields to the executor, so a long computation (an argon2
        // hash) shares the worker threads with other requests; the request time limit is
        // the timeout `dispatch` puts around the whole call.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        store
    }

    /// Times `iterations` store creations and instantiations of component `name`, as a
    /// request would do them, without running the component.
    pub async fn time_instantiation(
        self: &Arc<Self>,
        name: &str,
        iterations: usize,
    ) -> Result<Vec<Duration>> {
        let index = self
            .component_index(name)
            .with_context(|| format!("no component named {name}"))?;
        let pre = self.ready(index).await;
        let mut times = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let started = std::time::Instant::now();
            let mut store = self.new_store(index, Arc::new(AtomicBool::new(false)));
            let instance = pre
                .instantiate_async(&mut store)
                .await
                .map_err(anyhow::Error::from)?;
            times.push(started.elapsed());
            drop((instance, store));
        }
        Ok(times)
    }

    /// Runs component `index` on `request` in a fresh instance.
    pub async fn dispatch(
        self: Arc<Self>,
        index: usize,
        request: http::Request<Bytes>,
    ) -> (http::Response<HyperOutgoingBody>, Outcome) {
        let loaded = &self.components[index];
        // A component still compiling after a cold start is waited for, within the request's
        // time limit.
        let Ok(pre) = tokio::time::timeout(self.limits.request_timeout, self.ready(index)).await
        else {
            return (
                timeout_response(self.limits.request_timeout),
                Outcome::TimedOut,
            );
        };
        // Wait briefly for room; a flood of one kind of request then answers 503 instead of
        // taking every worker and all the memory.
        let room = loaded.room.clone();
        let permit = match room.clone().try_acquire_owned() {
            Ok(permit) => permit,
            // Only a request that has to wait pays for a timer.
            Err(_) => {
                let Ok(Ok(permit)) =
                    tokio::time::timeout(self.limits.queue_timeout, room.acquire_owned()).await
                else {
                    return (busy_response(), Outcome::Busy);
                };
                permit
            }
        };
        let refused = Arc::new(AtomicBool::new(false));
        let mut store = self.new_store(index, refused.clone());

        let (sender, receiver) = tokio::sync::oneshot::channel();
        let request = request
            .map(|b| Full::new(b).map_err(|never| -> wasmtime_wasi_http::Error { match never {} }));
        let prepared = (|| {
            let req = store
                .data_mut()
                .http()
                .new_incoming_request(Scheme::Http, request)?;
            let out = store.data_mut().http().new_response_outparam(sender)?;
            anyhow::Ok((req, out))
        })();
        let (req, out) = match prepared {
            Ok(v) => v,
            Err(e) => {
                return (
                    error_response(400, "bad_request", &format!("{e:#}")),
                    Outcome::Answered,
                );
            }
        };
        // The whole run, work after the answer included, is bounded by the time limit (the
        // guest yields every epoch, so the timeout can stop it) and holds the room it took. A
        // second's margin lets the wait for the answer below see a slow answer first.
        let limit = self.limits.request_timeout + Duration::from_secs(1);
        let task = tokio::spawn(async move {
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            };
            let ran = tokio::time::timeout(limit, run).await;
            drop(permit);
            ran.unwrap_or_else(|_| Err(wasmtime::Error::msg("the request time limit passed")))
        });

        let name = &loaded.grants.component;
        match tokio::time::timeout(self.limits.request_timeout, receiver).await {
            Ok(Ok(Ok(response))) => (response, Outcome::Answered),
            Ok(Ok(Err(code))) => {
                eprintln!("component {name} answered with an error: {code:?}");
                (
                    error_response(500, "component_error", "The service failed to answer."),
                    Outcome::Trapped,
                )
            }
            Ok(Err(_)) => {
                let error = match task.await {
                    Ok(Ok(())) => {
                        wasmtime::Error::msg("the component returned without setting a response")
                    }
                    Ok(Err(e)) => e,
                    Err(e) => wasmtime::Error::msg(e.to_string()),
                };
                self.failure(name, error, refused.load(Ordering::Relaxed))
            }
            Err(_) => {
                task.abort();
                eprintln!(
                    "component {name} exceeded the request time limit of {:?}",
                    self.limits.request_timeout
                );
                (
                    timeout_response(self.limits.request_timeout),
                    Outcome::TimedOut,
                )
            }
        }
    }

    fn failure(
        &self,
        name: &str,
        error: wasmtime::Error,
        out_of_memory: bool,
    ) -> (http::Response<HyperOutgoingBody>, Outcome) {
        let text = format!("{error:?}");
        if text.contains("maximum concurrent") || text.contains("pooling allocator") {
            eprintln!("component {name}: no instance slot free: {error:#}");
            return (busy_response(), Outcome::Busy);
        }
        if out_of_memory {
            eprintln!(
                "component {name} ran out of memory (limit {} MiB): {error:#}",
                self.limits.memory_bytes >> 20
            );
            return (
                error_response(500, "internal", "The service failed to answer."),
                Outcome::OutOfMemory,
            );
        }
        eprintln!("component {name} trapped: {error:#}");
        (
            error_response(500, "internal", "The service failed to answer."),
            Outcome::Trapped,
        )
    }
}

/// 503 `busy` with `Retry-After: 1`.
fn busy_response() -> http::Response<HyperOutgoingBody> {
    let mut r = error_response(503, "busy", "The server is busy; try again in a moment.");
    r.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    r
}

fn timeout_response(limit: Duration) -> http::Response<HyperOutgoingBody> {
    error_response(
        503,
        "timeout",
        &format!(
            "The service took longer than {} s to answer; try again.",
            limit.as_secs_f32()
        ),
    )
}

/// Adds the `spin-*` headers Spin gives a request, after any the client sent, as Spin does:
/// Spin neither drops nor replaces a client's `spin-*` header, so a component that reads the
/// first value of one reads the client's. spin-sdk's `Request` and `caseport_edge::Request`
/// keep the last value, which is the runtime's. (A chained request has no route: its path
/// info is the whole path.)
pub fn set_spin_headers(headers: &mut http::HeaderMap, spin: &SpinHeaders<'_>) {
    use http::{HeaderName, HeaderValue};
    let mut add = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.append(name, v);
        }
    };
    add(HeaderName::from_static("spin-full-url"), spin.full_url);
    add(HeaderName::from_static("spin-path-info"), spin.path_info);
    add(
        HeaderName::from_static("spin-matched-route"),
        spin.matched_route,
    );
    add(HeaderName::from_static("spin-base-path"), "/");
    add(
        HeaderName::from_static("spin-raw-component-route"),
        spin.raw_component_route,
    );
    add(
        HeaderName::from_static("spin-component-route"),
        spin.component_route,
    );
    add(
        HeaderName::from_static("spin-client-addr"),
        spin.client_addr,
    );
    for (param, value) in spin.params {
        if let Ok(name) = HeaderName::try_from(crate::router::path_match_header(param)) {
            add(name, value);
        }
    }
}

/// The values of the `spin-*` headers of one request.
pub struct SpinHeaders<'a> {
    pub full_url: &'a str,
    pub path_info: &'a str,
    pub matched_route: &'a str,
    pub raw_component_route: &'a str,
    pub component_route: &'a str,
    pub client_addr: &'a str,
    pub params: &'a [(String, String)],
}

impl<'a> SpinHeaders<'a> {
    /// A request the router matched.
    pub fn routed(
        full_url: &'a str,
        route: &'a Route,
        matched: &'a RouteMatch,
        client_addr: &'a str,
    ) -> Self {
        Self {
            full_url,
            path_info: &matched.path_info,
            matched_route: route.based(),
            raw_component_route: route.text(),
            component_route: route.component_route(),
            client_addr,
            params: &matched.params,
        }
    }
}

/// A JSON error answered by the runtime itself, in the application's error shape.
pub fn error_response(status: u16, code: &str, message: &str) -> http::Response<HyperOutgoingBody> {
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    let mut response = http::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

/// The Spin interfaces a component imports that this runtime does not provide (outbound
/// Redis, MQTT, PostgreSQL, MySQL, Serverless AI), each with what it is for. Read from the
/// binary, without compiling it.
fn unprovided_imports(wasm: &[u8]) -> Result<Vec<String>> {
    const UNPROVIDED: [(&str, &str); 9] = [
        ("fermyon:spin/redis", "outbound Redis"),
        ("spin:redis/redis", "outbound Redis"),
        ("fermyon:spin/mqtt", "outbound MQTT"),
        ("spin:mqtt/mqtt", "outbound MQTT"),
        ("fermyon:spin/postgres", "PostgreSQL"),
        ("spin:postgres/postgres", "PostgreSQL"),
        ("fermyon:spin/mysql", "MySQL"),
        ("spin:mysql/mysql", "MySQL"),
        ("fermyon:spin/llm", "Serverless AI"),
    ];
    let mut missing = Vec::new();
    // Only the outermost component's imports: nested modules and components import from it.
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.context("not a valid wasm component")? {
            wasmparser::Payload::Version { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentImportSection(imports) if depth == 1 => {
                for import in imports {
                    let name = import.context("malformed import section")?.name.0;
                    if let Some((_, what)) = UNPROVIDED.iter().find(|(p, _)| name.starts_with(p)) {
                        missing.push(format!("`{name}` ({what})"));
                    }
                }
            }
            _ => {}
        }
    }
    missing.sort();
    missing.dedup();
    Ok(missing)
}

fn read_component(source: &Path) -> Result<Vec<u8>> {
    match std::fs::read(source) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{} does not exist", source.display())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", source.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::unprovided_imports;
    use wasm_encoder::{
        Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType,
        NestedComponentSection,
    };

    /// A component importing each of `names` as an (empty) instance.
    fn importing(names: &[&str]) -> Component {
        let mut types = ComponentTypeSection::new();
        types.instance(&InstanceType::new());
        let mut imports = ComponentImportSection::new();
        for name in names {
            imports.import(name, ComponentTypeRef::Instance(0));
        }
        let mut component = Component::new();
        component.section(&types).section(&imports);
        component
    }

    #[test]
    fn spin_interfaces_it_lacks_are_found_without_compiling() {
        let wasm = importing(&["wasi:http/types@0.2.0", "fermyon:spin/redis@2.0.0"]).finish();
        assert_eq!(
            unprovided_imports(&wasm).unwrap(),
            ["`fermyon:spin/redis@2.0.0` (outbound Redis)"]
        );
        let wasm = importing(&["wasi:http/types@0.2.0", "fermyon:spin/key-value@2.0.0"]).finish();
        assert!(unprovided_imports(&wasm).unwrap().is_empty());
    }

    #[test]
    fn only_the_outer_components_imports_count() {
        let mut outer = importing(&["fermyon:spin/sqlite@2.0.0"]);
        outer.section(&NestedComponentSection(&importing(&[
            "spin:mqtt/mqtt@3.0.0",
        ])));
        assert!(unprovided_imports(&outer.finish()).unwrap().is_empty());
        assert!(unprovided_imports(b"not wasm").is_err());
    }
}
