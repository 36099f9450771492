//! The local runtime's Spin semantics, checked with the probe component.

use caseport_tests::{Up, Upstream};

#[test]
fn the_most_specific_route_wins() {
    let app = Up::probe().start().unwrap();
    let who = |path: &str| {
        app.get(path)
            .header("x-probe-component")
            .map(str::to_string)
    };
    assert_eq!(who("/probe/whoami").as_deref(), Some("exact"));
    assert_eq!(who("/probe/anything").as_deref(), Some("probe"));
    assert_eq!(who("/probe").as_deref(), Some("probe"));
    assert_eq!(who("/items/7/headers").as_deref(), Some("param"));
    assert_eq!(who("/items").as_deref(), Some("fallback"));
    assert_eq!(who("/").as_deref(), Some("fallback"));
    // A private component has no route of its own.
    assert_eq!(who("/private/whoami").as_deref(), Some("fallback"));
}

#[test]
fn spin_headers_describe_the_match_and_cannot_be_forged() {
    let app = Up::probe().start().unwrap();
    let r = app.get_with(
        "/items/42/headers?q=1",
        &[
            ("spin-path-match-id", "forged"),
            ("spin-client-addr", "6.6.6.6:1"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let lines: Vec<&str> = r.body.lines().collect();
    assert!(lines.contains(&"spin-path-match-id: 42"), "{lines:?}");
    assert!(lines.contains(&"spin-path-info: /headers"), "{lines:?}");
    assert!(
        lines.contains(&"spin-matched-route: /items/:id/..."),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"spin-component-route: /items/:id"),
        "{lines:?}"
    );
    assert!(
        lines
            .contains(&format!("spin-full-url: http://{}/items/42/headers?q=1", app.base).as_str()),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("spin-client-addr: 127.0.0.1:")),
        "{lines:?}"
    );
    assert!(
        !r.body.contains("forged") && !r.body.contains("6.6.6.6"),
        "{}",
        r.body
    );
}

#[test]
fn key_value_and_sqlite_survive_a_restart_in_spins_layout() {
    let state = tempfile::tempdir().unwrap();
    let first = Up::probe().state_dir(state.path()).start().unwrap();
    assert_eq!(first.send("PUT", "/probe/kv/greeting", b"kept").status, 204);
    assert_eq!(
        first.send("POST", "/probe/notes", b"first note").status,
        201
    );
    assert_eq!(
        first.send("POST", "/probe/notes", b"second note").status,
        201
    );
    let (status, _) = first.stop().unwrap();
    assert!(status.success());
    assert!(state.path().join("sqlite_key_value.db").is_file());
    assert!(state.path().join("sqlite_db.db").is_file());

    let second = Up::probe().state_dir(state.path()).start().unwrap();
    let kv = second.get("/probe/kv/greeting");
    assert_eq!((kv.status, kv.body.as_str()), (200, "kept"));
    let notes = second.get("/probe/notes");
    assert_eq!(
        (notes.status, notes.body.as_str()),
        (200, "first note\nsecond note")
    );
    assert_eq!(second.get("/probe/kv/missing").status, 404);
}

#[test]
fn spin_sqlite_3_reports_changes_and_rowid() {
    let app = Up::probe().start().unwrap();
    let r = app.get("/probe/sqlite3");
    assert_eq!((r.status, r.body.as_str()), (200, "changes=2 rowid=2"));
}

#[test]
fn a_component_without_a_grant_is_denied_the_store() {
    let app = Up::probe().start().unwrap();
    assert_eq!(
        app.send("PUT", "/probe/kv/secret", b"granted only").status,
        204
    );
    let kv = app.get("/kv/secret");
    assert_eq!(kv.header("x-probe-component"), Some("fallback"));
    assert_eq!((kv.status, kv.body.as_str()), (500, "Error::AccessDenied"));
    let db = app.get("/notes");
    assert_eq!(db.status, 500);
    assert!(db.body.contains("AccessDenied"), "{}", db.body);
}

#[test]
fn variables_come_from_defaults_environment_and_command_line() {
    let app = Up::probe()
        .env("SPIN_VARIABLE_FROM_ENV", "from the environment")
        .env("SPIN_VARIABLE_FROM_CLI", "loses to the command line")
        .variable("from_cli", "from the command line")
        .start()
        .unwrap();
    assert_eq!(app.get("/probe/var/greeting").body, "hello, world");
    assert_eq!(app.get("/probe/var/from_env").body, "from the environment");
    assert_eq!(app.get("/probe/var/from_cli").body, "from the command line");
    assert_eq!(app.get("/probe/var/token_length").body, "test-token");
    let undeclared = app.get("/probe/var/not_declared");
    assert_eq!(undeclared.status, 404);
    assert!(undeclared.body.contains("Undefined"), "{}", undeclared.body);
    let invalid = app.get("/probe/var/Not-Valid");
    assert!(invalid.body.contains("InvalidName"), "{}", invalid.body);
    // The fallback component declares no such variable.
    assert!(app.get("/var/greeting").body.contains("Undefined"));
}

#[test]
fn a_missing_required_variable_stops_start_up_with_the_fix() {
    let mut up = Up::probe();
    up.args.clear();
    let (status, output) = up.fail("127.0.0.1:0").unwrap();
    assert!(!status.success());
    assert!(
        output.contains("variables.api_token is required"),
        "{output}"
    );
    assert!(output.contains("SPIN_VARIABLE_API_TOKEN"), "{output}");
    // The environment provides it as well as the command line does.
    let mut up = Up::probe().env("SPIN_VARIABLE_API_TOKEN", "t");
    up.args.clear();
    let app = up.start().unwrap();
    assert_eq!(app.get("/probe/var/token_length").body, "t");
}

#[test]
fn outbound_http_reaches_only_allowed_hosts() {
    let upstream = Upstream::start(200, "upstream says hi").unwrap();
    let other = Upstream::start(200, "should never be reached").unwrap();
    let app = Up::probe()
        .variable("upstream", &format!("http://127.0.0.1:{}", upstream.port))
        .start()
        .unwrap();
    let allowed = app.get(&format!(
        "/probe/outbound?url=http://127.0.0.1:{}/x",
        upstream.port
    ));
    assert_eq!(
        (allowed.status, allowed.body.as_str()),
        (200, "200 upstream says hi")
    );

    let refused = app.get(&format!(
        "/probe/outbound?url=http://127.0.0.1:{}/x",
        other.port
    ));
    assert_eq!(refused.status, 502);
    assert!(
        refused.body.contains("HttpRequestDenied"),
        "{}",
        refused.body
    );
    let refused = app.get("/probe/outbound?url=https://example.com/");
    assert!(
        refused.body.contains("HttpRequestDenied"),
        "{}",
        refused.body
    );
    // The fallback component has no outbound grant at all.
    let refused = app.get(&format!(
        "/outbound?url=http://127.0.0.1:{}/x",
        upstream.port
    ));
    assert!(
        refused.body.contains("HttpRequestDenied"),
        "{}",
        refused.body
    );

    assert_eq!(upstream.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(other.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn service_chaining_reaches_a_private_component_in_process() {
    let app = Up::probe().start().unwrap();
    let chained = app.get("/probe/outbound?url=http://private.spin.internal/whoami");
    assert_eq!(
        (chained.status, chained.body.as_str()),
        (200, "200 private")
    );
    // Chaining is outbound HTTP too: without the grant it is refused.
    let refused = app.get("/outbound?url=http://private.spin.internal/whoami");
    assert!(
        refused.body.contains("HttpRequestDenied"),
        "{}",
        refused.body
    );
    // An allowed pattern naming no component is not found.
    let missing = app.get("/probe/outbound?url=http://nobody.spin.internal/whoami");
    assert_eq!(missing.status, 502, "{}", missing.body);
}

#[test]
fn a_trap_is_answered_500_and_the_next_request_succeeds() {
    let app = Up::probe().start().unwrap();
    let trapped = app.get("/probe/trap");
    assert_eq!(trapped.status, 500);
    assert_eq!(trapped.json()["error"]["code"], "internal");
    assert_eq!(app.get("/probe/whoami").status, 200);
    assert!(app.wait_for_output("component probe trapped"));
}

#[test]
fn an_endless_loop_is_stopped_at_the_time_limit() {
    let app = Up::probe()
        .arg("--request-timeout")
        .arg("1")
        .start()
        .unwrap();
    let started = std::time::Instant::now();
    let stopped = app.get("/probe/loop");
    assert_eq!(stopped.status, 503);
    assert_eq!(stopped.json()["error"]["code"], "timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let next = app.get("/probe/whoami");
    assert_eq!((next.status, next.body.as_str()), (200, "exact"));
}

#[test]
fn a_stopped_loop_gives_its_room_back() {
    // One request at a time for the component: if the stopped loop still ran, the next
    // request would wait and be refused.
    let app = Up::probe()
        .args([
            "--request-timeout",
            "1",
            "--max-concurrent",
            "1",
            "--queue-timeout",
            "3",
        ])
        .start()
        .unwrap();
    assert_eq!(app.get("/probe/loop").status, 503);
    let next = app.get("/probe/headers");
    assert_eq!(next.status, 200, "{}", next.body);
}

#[test]
fn a_busy_component_answers_503_after_a_short_wait_and_others_are_unaffected() {
    let app = std::sync::Arc::new(
        Up::probe()
            .args([
                "--request-timeout",
                "5",
                "--max-concurrent",
                "1",
                "--queue-timeout",
                "0.5",
            ])
            .start()
            .unwrap(),
    );
    let looping = {
        let app = app.clone();
        std::thread::spawn(move || app.get("/probe/loop").status)
    };
    // Once the loop holds the component's one place, the next request waits, then is refused.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let busy = loop {
        let r = app.get("/probe/headers");
        if r.status != 200 || std::time::Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(busy.status, 503, "{}", busy.body);
    assert_eq!(busy.json()["error"]["code"], "busy");
    assert_eq!(busy.header("retry-after"), Some("1"));
    // Another component is not held up.
    assert_eq!(app.get("/probe/whoami").status, 200);
    assert_eq!(looping.join().unwrap(), 503);
}

#[test]
fn a_client_slow_to_send_its_headers_is_disconnected() {
    let app = Up::probe().args(["--header-timeout", "1"]).start().unwrap();
    let mut stream = std::net::TcpStream::connect(&app.base).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    // Half a request line, then nothing: the server must not wait for ever.
    std::io::Write::write_all(&mut stream, b"GET /probe/whoami HTTP/1.1\r\nhost: loc").unwrap();
    let mut answer = Vec::new();
    let read = std::io::Read::read_to_end(&mut stream, &mut answer);
    assert!(read.is_ok(), "the connection was not closed: {read:?}");
    // hyper answers 408 or just closes; either way the connection is over.
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

#[test]
fn a_client_slow_to_send_its_body_gets_408() {
    let app = Up::probe().args(["--body-timeout", "1"]).start().unwrap();
    let mut stream = std::net::TcpStream::connect(&app.base).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"POST /probe/echo HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\nonly ten..",
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
}

#[test]
fn connections_past_the_cap_wait_for_room() {
    use std::io::{Read, Write};
    let app = Up::probe()
        .args(["--max-connections", "2", "--header-timeout", "30"])
        .start()
        .unwrap();
    let idle: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(&app.base).unwrap())
        .collect();
    // Let the server accept both.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut third = std::net::TcpStream::connect(&app.base).unwrap();
    third
        .write_all(b"GET /probe/whoami HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let mut first_byte = [0u8; 1];
    assert!(
        third.read(&mut first_byte).is_err(),
        "answered while the server was full"
    );
    drop(idle);
    third
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = third.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[test]
fn running_out_of_memory_fails_only_that_request() {
    let app = Up::probe()
        .arg("--memory-limit-mib")
        .arg("32")
        .start()
        .unwrap();
    let r = app.get("/probe/alloc");
    assert_eq!(r.status, 500);
    assert!(app.wait_for_output("component probe ran out of memory (limit 32 MiB)"));
    assert_eq!(app.get("/probe/whoami").status, 200);
}

#[test]
fn a_body_over_the_limit_is_refused_with_413() {
    let app = Up::probe()
        .arg("--max-request-body")
        .arg("1024")
        .start()
        .unwrap();
    let ok = app.send("POST", "/probe/echo", &[b'a'; 1024]);
    assert_eq!((ok.status, ok.body.as_str()), (200, "1024 bytes"));
    let big = app.send("POST", "/probe/echo", &[b'a'; 1025]);
    assert_eq!(big.status, 413);
    assert_eq!(big.json()["error"]["code"], "body_too_large");
    // Without a Content-Length the limit still holds.
    let mut chunked = b"POST /probe/echo HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for _ in 0..3 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b'b'; 512]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let raw = app.raw(&chunked);
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
}

#[test]
fn each_request_is_logged_once_without_its_query() {
    let app = Up::probe().start().unwrap();
    assert_eq!(app.get("/probe/whoami?token=very-secret").status, 200);
    assert!(app.wait_for_output("GET /probe/whoami exact 200"));
    let log = app.output.text();
    assert_eq!(
        log.matches("GET /probe/whoami exact 200").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("very-secret"), "{log}");
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let app = Up::probe().start().unwrap();
    assert_eq!(app.get("/probe/whoami").status, 200);
    let (status, output) = app.stop().unwrap();
    assert!(status.success(), "{status}: {output}");
    assert!(output.contains("Shutting down"), "{output}");
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let cache = tempfile::tempdir().unwrap();
    let cached = || {
        std::fs::read_dir(cache.path())
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                    .count()
            })
            .unwrap_or(0)
    };
    let first = Up::probe()
        .arg("--cache-dir")
        .arg(cache.path().to_string_lossy())
        .start()
        .unwrap();
    assert_eq!(first.get("/probe/whoami").status, 200);
    drop(first);
    // Five components, one wasm file: one compiled artefact.
    assert_eq!(cached(), 1);
    let second = Up::probe()
        .arg("--cache-dir")
        .arg(cache.path().to_string_lossy())
        .start()
        .unwrap();
    assert_eq!(second.get("/probe/whoami").status, 200);
    assert_eq!(cached(), 1);
}
