//! A test component: each path exercises one host interface, so the runtime's tests can
//! check routing, grants, state, variables, outbound HTTP and failure handling through HTTP.

// `#[http_component]` expands to the component's export glue, which is unsafe code.
#![allow(unsafe_code)]

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;
use spin_sdk::{key_value, sqlite, sqlite3, variables};

fn text(status: u16, body: impl Into<String>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(body.into())
        .build()
}

/// Every answer names the component that gave it, so routing can be checked from outside.
fn named(component: &str, mut response: Response) -> Response {
    response.set_header("x-probe-component", component);
    response
}

fn failed(e: impl std::fmt::Debug) -> Response {
    text(500, format!("{e:?}"))
}

#[http_component]
fn handle(req: Request) -> Response {
    let component = variables::get("component_name").unwrap_or_else(|_| "unnamed".into());
    named(&component, answer(&req, &component))
}

/// Dispatches on the part of the path after the matched route, so one wasm file can serve
/// several routes of a test manifest.
fn answer(req: &Request, component: &str) -> Response {
    let path = req
        .header("spin-path-info")
        .and_then(|v| v.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or(req.path())
        .to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // An exact route has no path info: whoami answers at the end of any path.
    if segments.last() == Some(&"whoami") {
        return text(200, component.to_string());
    }
    // `?headers` on any path: the spin-* headers of the request.
    if req.query() == "headers" {
        return spin_headers(req);
    }
    match (req.method(), segments.as_slice()) {
        (Method::Get, ["headers"]) => spin_headers(req),
        (Method::Get, ["tcp"]) => tcp_echo(req.query()),
        (Method::Get, ["attach"]) => attach(),
        (Method::Get, ["kv", key]) => match key_value::Store::open_default() {
            Ok(store) => match store.get(key) {
                Ok(Some(v)) => text(200, String::from_utf8_lossy(&v)),
                Ok(None) => text(404, "no such key"),
                Err(e) => failed(e),
            },
            Err(e) => failed(e),
        },
        (Method::Put, ["kv", key]) => match key_value::Store::open_default() {
            Ok(store) => match store.set(key, req.body()) {
                Ok(()) => text(204, ""),
                Err(e) => failed(e),
            },
            Err(e) => failed(e),
        },
        (Method::Post, ["notes"]) => add_note(&String::from_utf8_lossy(req.body())),
        (Method::Get, ["notes"]) => list_notes(),
        (Method::Get, ["sqlite3"]) => sqlite3_changes(),
        (Method::Get, ["var", name]) => match variables::get(name) {
            Ok(v) => text(200, v),
            Err(e) => text(404, format!("{e:?}")),
        },
        (Method::Get, ["outbound"]) => outbound(req.query()),
        (Method::Post, ["echo"]) => text(200, format!("{} bytes", req.body().len())),
        (Method::Get, ["argon2"]) => time_argon2(),
        (Method::Get, ["trap"]) => trap(),
        (Method::Get, ["loop"]) => spin_forever(),
        (Method::Get, ["alloc"]) => allocate_forever(),
        _ => text(404, format!("{component}: nothing at {path}")),
    }
}

/// The request's spin-* headers, one `name: value` a line, sorted. spin-sdk's `Request` keeps
/// the last value of a repeated header: the runtime's, when a client sent one too.
fn spin_headers(req: &Request) -> Response {
    let mut lines: Vec<String> = req
        .headers()
        .filter(|(k, _)| k.starts_with("spin-"))
        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("")))
        .collect();
    lines.sort();
    text(200, lines.join("\n"))
}

/// Connects to `?addr=IP:PORT` over TCP (wasi:sockets, through Rust's standard library),
/// sends `ping` and answers what came back.
fn tcp_echo(query: &str) -> Response {
    use std::io::{Read, Write};
    let Some(addr) = query.strip_prefix("addr=") else {
        return text(400, "pass ?addr=IP:PORT");
    };
    let addr = addr.replace("%3A", ":");
    let exchanged = std::net::TcpStream::connect(addr.as_str()).and_then(|mut s| {
        s.write_all(b"ping")?;
        let mut back = [0u8; 4];
        s.read_exact(&mut back)?;
        Ok(back)
    });
    match exchanged {
        Ok(back) => text(200, format!("echo: {}", String::from_utf8_lossy(&back))),
        Err(e) => text(502, format!("{:?}", e.kind())),
    }
}

/// Tries to attach another database file, which Spin refuses.
fn attach() -> Response {
    let attached = sqlite::Connection::open_default()
        .and_then(|db| db.execute("ATTACH DATABASE 'elsewhere.db' AS elsewhere", &[]));
    match attached {
        Ok(_) => text(200, "attached"),
        Err(e) => text(403, format!("{e:?}")),
    }
}

fn add_note(note: &str) -> Response {
    let result = sqlite::Connection::open_default().and_then(|db| {
        db.execute(
            "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
            &[],
        )?;
        db.execute(
            "INSERT INTO notes (body) VALUES (?)",
            &[sqlite::Value::Text(note.to_string())],
        )
    });
    match result {
        Ok(_) => text(201, ""),
        Err(e) => failed(e),
    }
}

fn list_notes() -> Response {
    let result = sqlite::Connection::open_default()
        .and_then(|db| db.execute("SELECT body FROM notes ORDER BY id", &[]));
    match result {
        Ok(rows) => text(
            200,
            rows.rows()
                .filter_map(|r| r.get::<&str>("body").map(str::to_string))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        Err(e) => failed(e),
    }
}

fn sqlite3_changes() -> Response {
    let result = sqlite3::Connection::open_default().and_then(|db| {
        db.execute(
            "CREATE TABLE IF NOT EXISTS counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
            &[],
        )?;
        db.execute("INSERT INTO counters (n) VALUES (1), (2)", &[])?;
        Ok((db.changes(), db.last_insert_rowid()))
    });
    match result {
        Ok((changes, rowid)) => text(200, format!("changes={changes} rowid={rowid}")),
        Err(e) => failed(e),
    }
}

fn outbound(query: &str) -> Response {
    let Some(url) = query.strip_prefix("url=") else {
        return text(400, "pass ?url=");
    };
    let url = url.replace("%3A", ":").replace("%2F", "/");
    let sent: Result<Response, _> = spin_sdk::http::run(spin_sdk::http::send(Request::get(url)));
    match sent {
        Ok(r) => text(
            200,
            format!("{} {}", r.status(), String::from_utf8_lossy(r.body())),
        ),
        Err(e) => text(502, format!("{e:?}")),
    }
}

/// Times Caseport's own password hashing inside the component, for the wasm/native ratio
/// of the benchmark: the microseconds of each of five hashes.
fn time_argon2() -> Response {
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        if let Err(e) = caseport_shared::passwords::hash("a benchmark passphrase of some length") {
            return failed(e);
        }
        times.push(started.elapsed().as_micros().to_string());
    }
    text(200, times.join(","))
}

#[allow(clippy::panic)]
fn trap() -> Response {
    panic!("the probe was asked to trap")
}

fn spin_forever() -> Response {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn allocate_forever() -> Response {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        kept.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&kept);
    }
}
