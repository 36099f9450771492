//! The HTTP server: accepts connections, routes each request to its component with Spin's
//! `spin-*` headers, logs one line per request, and shuts down gracefully.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::request_log::{FLUSH_EVERY, RequestLog};
use crate::runtime::{App, Outcome, SpinHeaders, error_response, set_spin_headers};

type Log = RequestLog<std::io::Stdout>;

/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until Ctrl-C or SIGTERM.
pub async fn serve(app: Arc<App>, listener: TcpListener) -> Result<()> {
    let graceful = GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    // A connection is accepted only when there is room for it: past the cap, clients wait in
    // the listen queue instead of taking memory and tasks.
    let room = Arc::new(tokio::sync::Semaphore::new(app.limits.max_connections));
    let log = RequestLog::new(std::io::stdout());
    let flusher = tokio::spawn({
        let log = log.clone();
        async move {
            let mut every = tokio::time::interval(FLUSH_EVERY);
            loop {
                every.tick().await;
                log.flush();
            }
        }
    });
    loop {
        tokio::select! {
            accepted = accept(&listener, &room) => {
                let (stream, peer, permit) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        eprintln!("accept failed: {e}");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let header_timeout = app.limits.header_timeout;
                let app = app.clone();
                let log = log.clone();
                let local = listener.local_addr().ok();
                let client: Arc<str> = peer.to_string().into();
                let service = hyper::service::service_fn(move |req| {
                    let (app, log, client) = (app.clone(), log.clone(), client.clone());
                    async move { Ok::<_, Infallible>(handle(app, &log, req, &client, local).await) }
                });
                // A client that is slow to send its headers (or leaves an idle connection
                // open) is disconnected after the header timeout.
                let conn = http1::Builder::new()
                    .keep_alive(true)
                    .timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    log.flush();
    println!(
        "Shutting down: finishing requests in flight (up to {} s)",
        DRAIN.as_secs()
    );
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("Some requests did not finish within {} s", DRAIN.as_secs());
    }
    flusher.abort();
    log.flush();
    Ok(())
}

/// Waits for room for one more connection, then accepts it.
async fn accept(
    listener: &TcpListener,
    room: &Arc<tokio::sync::Semaphore>,
) -> std::io::Result<(
    tokio::net::TcpStream,
    SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
)> {
    let permit = room
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, permit))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Routes and runs one request, then logs it.
async fn handle(
    app: Arc<App>,
    log: &Arc<Log>,
    request: Request<Incoming>,
    client: &str,
    local: Option<SocketAddr>,
) -> Response<HyperOutgoingBody> {
    let in_flight = log.begin();
    let started = Instant::now();
    let method = request.method().clone();
    // The query may carry a token (a reset link); it is never logged.
    let path = request.uri().path().to_string();
    let (response, component) = route(&app, request, client, local).await;
    let elapsed = started.elapsed();
    in_flight.finish(format_args!(
        "{} {method} {path} {} {} {:.2}ms",
        jiff::Timestamp::now()
            .round(jiff::Unit::Millisecond)
            .unwrap_or_else(|_| jiff::Timestamp::now()),
        component.unwrap_or("-"),
        response.status().as_u16(),
        elapsed.as_secs_f64() * 1000.0
    ));
    response
}

async fn route<'a>(
    app: &'a Arc<App>,
    request: Request<Incoming>,
    client: &str,
    local: Option<SocketAddr>,
) -> (Response<HyperOutgoingBody>, Option<&'a str>) {
    // Listening on loopback means "this computer only": a page of another site that points
    // its own host name at 127.0.0.1 (DNS rebinding) must not reach the app through it.
    if let Some(local) = local
        && local.ip().is_loopback()
        && let Some(host) = request.headers().get(http::header::HOST)
        && !host
            .to_str()
            .is_ok_and(|h| is_loopback_name(h) || is_allowed_name(h, &app.limits.allowed_hosts))
    {
        return (
            error_response(
                403,
                "bad_host",
                &format!(
                    "This server listens on {local} and answers only requests addressed to it (or to localhost); open http://{local}/ instead."
                ),
            ),
            None,
        );
    }
    let path = request.uri().path().to_string();
    // Spin answers these itself, before any route.
    if let Some(what) = path.strip_prefix("/.well-known/spin/") {
        return (well_known(app, what), None);
    }
    let Some((route, index, matched)) = app.router.find(&path) else {
        return (
            error_response(404, "not_found", "There is nothing at this address."),
            None,
        );
    };
    let name = app.grants(index).component.as_str();
    let limit = app.limits.max_request_body;
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return (too_large(limit), Some(name));
    }
    let (mut parts, body) = request.into_parts();
    let read = tokio::time::timeout(app.limits.body_timeout, Limited::new(body, limit).collect());
    let body = match read.await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return (too_large(limit), Some(name));
        }
        Ok(Err(_)) => {
            return (
                error_response(400, "bad_request", "The request body could not be read."),
                Some(name),
            );
        }
        Err(_) => {
            let mut r = error_response(
                408,
                "body_timeout",
                &format!(
                    "The request body did not arrive within {} s.",
                    app.limits.body_timeout.as_secs_f32()
                ),
            );
            r.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            return (r, Some(name));
        }
    };

    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| local.map(|l| l.to_string()))
        .unwrap_or_else(|| "localhost".into());
    let full_url = format!(
        "http://{host}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    if !parts.headers.contains_key(http::header::HOST)
        && let Ok(v) = HeaderValue::from_str(&host)
    {
        parts.headers.insert(http::header::HOST, v);
    }
    set_spin_headers(
        &mut parts.headers,
        &SpinHeaders::routed(&full_url, route, &matched, client),
    );

    let (response, outcome) = app
        .clone()
        .dispatch(index, Request::from_parts(parts, body))
        .await;
    if outcome == Outcome::Busy {
        eprintln!("{name}: request refused, all instance slots busy");
    }
    (response, Some(name))
}

/// `/.well-known/spin/health` (200, `OK`) and `/.well-known/spin/info` (the application's
/// name and version), answered by the runtime for any method, as Spin does; anything else
/// under the prefix is an empty 404.
fn well_known(app: &App, what: &str) -> Response<HyperOutgoingBody> {
    let (status, content_type, body) = match what {
        "health" => (200, None, bytes::Bytes::from_static(b"OK")),
        "info" => (
            200,
            Some("application/json"),
            serde_json::to_vec_pretty(&app.info)
                .map(bytes::Bytes::from)
                .unwrap_or_default(),
        ),
        _ => (404, None, bytes::Bytes::new()),
    };
    let mut response = Response::new(
        http_body_util::Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    if let Some(ct) = content_type {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    response
}

/// Whether `host` (with or without a port) is one of the names `--allow-host` added.
fn is_allowed_name(host: &str, allowed: &[String]) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Whether a `Host` header names this computer: `localhost`, a `*.localhost` name (browsers
/// resolve those to loopback themselves), or a loopback address; with or without a port.
pub fn is_loopback_name(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, port)) if port.is_empty() || port.starts_with(':') => ip,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            Some(_) => return false,
            None => host,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Asks the application's status route (`[application.tool.caseport] status_route`) how the
/// deployment stands, and prints each of its warnings on a line of its own; one line more
/// when something meant for a local run is on and other machines can reach `listen`.
pub async fn report_status(app: Arc<App>, route: String, listen: SocketAddr) {
    let Some((matched_route, index, matched)) = app.router.find(&route) else {
        eprintln!("Warning: the status route {route} matches no [[trigger.http]] route");
        return;
    };
    let full_url = format!("http://{listen}{route}");
    let mut request = Request::builder()
        .method(http::Method::GET)
        .uri(&full_url)
        .header(http::header::HOST, listen.to_string())
        .body(bytes::Bytes::new())
        .unwrap_or_default();
    set_spin_headers(
        request.headers_mut(),
        &SpinHeaders::routed(&full_url, matched_route, &matched, "127.0.0.1:0"),
    );
    let (response, _) = app.clone().dispatch(index, request).await;
    let status = response.status();
    let body = match response.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => bytes::Bytes::new(),
    };
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&body) else {
        eprintln!("Warning: the status route {route} answered {status} without a JSON status");
        return;
    };
    let lines = |key: &str| -> Vec<String> {
        answer[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    for warning in lines("warnings") {
        eprintln!("Warning: {warning}");
    }
    let local_only = lines("local_only");
    if !listen.ip().is_loopback() && !local_only.is_empty() {
        eprintln!(
            "Warning: listening on {listen}, which other machines may reach, with {} on; these are for a local run: listen on 127.0.0.1 or turn them off",
            local_only.join(" and ")
        );
    }
}

fn too_large(limit: usize) -> Response<HyperOutgoingBody> {
    error_response(
        413,
        "body_too_large",
        &format!("The request body is larger than the {limit} bytes this server accepts."),
    )
}

/// Binds the listening socket, with one clear line when the address is taken.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::AddrInUse {
            "the address is already in use (is another `caseport up` or `spin up` running?)"
                .to_string()
        } else {
            e.to_string()
        };
        anyhow::anyhow!(
            "cannot listen on {addr}: {why}; choose another with --listen 127.0.0.1:PORT"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::is_loopback_name;

    #[test]
    fn loopback_names_are_this_computer_only() {
        for ok in [
            "127.0.0.1:3000",
            "127.0.0.1",
            "localhost:3000",
            "LOCALHOST",
            "clinic-a.localhost:3000",
            "[::1]:3000",
            "[::1]",
            "127.1.2.3:80",
        ] {
            assert!(is_loopback_name(ok), "{ok}");
        }
        for bad in [
            "evil.example:3000",
            "localhost.evil.example",
            "192.0.2.2:3000",
            "[::2]:3000",
            "[::1]x",
            "127.0.0.1:http",
            "notlocalhost",
            "",
        ] {
            assert!(!is_loopback_name(bad), "{bad}");
        }
    }
}
