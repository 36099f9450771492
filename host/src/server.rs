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
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::runtime::{App, Outcome, error_response, set_spin_headers};

/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until Ctrl-C or SIGTERM.
pub async fn serve(app: Arc<App>, listener: TcpListener) -> Result<()> {
    let graceful = GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        eprintln!("accept failed: {e}");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let local = listener.local_addr().ok();
                let service = hyper::service::service_fn(move |req| {
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(handle(app, req, peer, local).await) }
                });
                let conn = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
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
    Ok(())
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
    request: Request<Incoming>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> Response<HyperOutgoingBody> {
    let started = Instant::now();
    let method = request.method().clone();
    // The query may carry a token (a reset link); it is never logged.
    let path = request.uri().path().to_string();
    let (response, component) = route(&app, request, peer, local).await;
    let elapsed = started.elapsed();
    println!(
        "{} {method} {path} {} {} {:.2}ms",
        jiff::Timestamp::now()
            .round(jiff::Unit::Millisecond)
            .unwrap_or_else(|_| jiff::Timestamp::now()),
        component.unwrap_or("-"),
        response.status().as_u16(),
        elapsed.as_secs_f64() * 1000.0
    );
    response
}

async fn route(
    app: &Arc<App>,
    request: Request<Incoming>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> (Response<HyperOutgoingBody>, Option<&str>) {
    let path = request.uri().path().to_string();
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
    let body = match Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return (too_large(limit), Some(name));
        }
        Err(_) => {
            return (
                error_response(400, "bad_request", "The request body could not be read."),
                Some(name),
            );
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
        &full_url,
        Some((route, &matched)),
        Some(&peer.to_string()),
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
