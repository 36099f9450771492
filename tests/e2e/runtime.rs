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
fn variables_come_from_files_and_a_dot_env_as_in_spin() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("greeting.txt"), "from a file").unwrap();
    std::fs::write(dir.path().join("vars.json"), r#"{"from_cli": "from json"}"#).unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "SPIN_VARIABLE_FROM_ENV=\"from dot env\"\nOTHER=ignored\n",
    )
    .unwrap();
    let app = Up::probe()
        .arg("--variable")
        .arg(format!(
            "greeting=@{}",
            dir.path().join("greeting.txt").display()
        ))
        .arg("--variable")
        .arg(format!("@{}", dir.path().join("vars.json").display()))
        .start_in(dir.path())
        .unwrap();
    assert_eq!(app.get("/probe/var/greeting").body, "from a file, world");
    assert_eq!(app.get("/probe/var/from_cli").body, "from json");
    assert_eq!(app.get("/probe/var/from_env").body, "from dot env");
    // The process environment beats the .env file.
    let app = Up::probe()
        .env("SPIN_VARIABLE_FROM_ENV", "from the environment")
        .start_in(dir.path())
        .unwrap();
    assert_eq!(app.get("/probe/var/from_env").body, "from the environment");
}

/// The spin-* headers a request to `path` carried, one `name: value` a line.
fn spin_headers(app: &caseport_tests::Server, path: &str, forged: &[(&str, &str)]) -> Vec<String> {
    let r = app.get_with(path, forged);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body.lines().map(str::to_string).collect()
}

fn has(lines: &[String], line: &str) -> bool {
    lines.iter().any(|l| l == line)
}

#[test]
fn spin_headers_are_spins_and_a_client_cannot_forge_what_components_read() {
    let app = Up::probe().start().unwrap();
    // Spin neither drops nor replaces a client's spin-* header: it adds its own after it,
    // and spin-sdk reads the last value, the runtime's (as `caseport_edge::Request` does:
    // security::a_client_cannot_forge_the_spin_headers_the_api_components_read).
    let lines = spin_headers(
        &app,
        "/items/42/headers?q=1",
        &[
            ("spin-path-match-id", "forged"),
            ("spin-client-addr", "6.6.6.6:1"),
            ("spin-full-url", "http://evil.example/"),
        ],
    );
    for expected in [
        "spin-path-match-id: 42".to_string(),
        "spin-path-info: /headers".to_string(),
        "spin-matched-route: /items/:id/...".to_string(),
        "spin-raw-component-route: /items/:id/...".to_string(),
        "spin-component-route: /items/:id".to_string(),
        "spin-base-path: /".to_string(),
        format!("spin-full-url: http://{}/items/42/headers?q=1", app.base),
    ] {
        assert!(has(&lines, &expected), "{expected} not in {lines:?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("spin-client-addr: 127.0.0.1:")),
        "{lines:?}"
    );
    let all = lines.join("\n");
    assert!(
        !all.contains("forged") && !all.contains("6.6.6.6") && !all.contains("evil"),
        "{all}"
    );

    // The root of a `/...` route: path info `/`, an empty component route.
    let root = spin_headers(&app, "/?headers", &[]);
    for expected in [
        "spin-path-info: /",
        "spin-matched-route: /...",
        "spin-component-route: ",
    ] {
        assert!(has(&root, expected), "{expected} not in {root:?}");
    }
    // `:name.ext`: the parameter stops at the dot; `_` in its name is `-` in the header.
    let file = spin_headers(&app, "/files/report.txt?headers", &[]);
    assert!(has(&file, "spin-path-match-file-name: report"), "{file:?}");
    assert!(
        has(&file, "spin-matched-route: /files/:file_name.txt"),
        "{file:?}"
    );
    // `/x/*` is a trailing wildcard, reported as written.
    let star = spin_headers(&app, "/star/a/b/?headers", &[]);
    assert!(has(&star, "spin-path-info: /a/b/"), "{star:?}");
    assert!(has(&star, "spin-component-route: /star/*"), "{star:?}");
}

#[test]
fn empty_path_segments_are_kept_as_spin_keeps_them() {
    let app = Up::probe().start().unwrap();
    let who = |path: &str| {
        let r = app.get(path);
        (r.header("x-probe-component").map(str::to_string), r.body)
    };
    // `/probe//whoami` is not the exact route `/probe/whoami`: the wildcard takes it.
    assert_eq!(who("/probe/whoami").0.as_deref(), Some("exact"));
    assert_eq!(who("/probe//whoami").0.as_deref(), Some("probe"));
    // Slashes around the path are ignored.
    assert_eq!(who("//probe/whoami/").0.as_deref(), Some("exact"));
    let lines = spin_headers(&app, "/probe//headers", &[]);
    assert!(has(&lines, "spin-path-info: //headers"), "{lines:?}");
}

#[test]
fn the_runtime_answers_spins_well_known_paths_itself() {
    let app = Up::probe().start().unwrap();
    let health = app.get("/.well-known/spin/health");
    assert_eq!((health.status, health.body.as_str()), (200, "OK"));
    assert!(
        health.header("x-probe-component").is_none(),
        "the app never sees it"
    );
    let info = app.get("/.well-known/spin/info");
    assert_eq!(info.status, 200);
    assert_eq!(info.header("content-type"), Some("application/json"));
    assert_eq!(info.json()["name"], "probe");
    let other = app.get("/.well-known/spin/other");
    assert_eq!((other.status, other.body.as_str()), (404, ""));
    // Without the trailing part it is an ordinary path of the app.
    assert_eq!(
        app.get("/.well-known/spin").header("x-probe-component"),
        Some("fallback")
    );
}

#[test]
fn sockets_reach_only_what_allowed_outbound_hosts_names() {
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in echo.incoming().flatten() {
            let mut s = stream;
            let mut buf = [0u8; 4];
            use std::io::{Read, Write};
            if s.read_exact(&mut buf).is_ok() {
                let _ = s.write_all(&buf);
            }
        }
    });
    // tcp://127.0.0.0/24:PORT..PORT+1 (a network, and a range whose end is excluded).
    let app = Up::probe()
        .variable("tcp_ports", &format!("{port}..{}", port + 1))
        .start()
        .unwrap();
    let ok = app.get(&format!("/probe/tcp?addr=127.0.0.1:{port}"));
    assert_eq!((ok.status, ok.body.as_str()), (200, "echo: ping"));
    let other_port = app.get(&format!("/probe/tcp?addr=127.0.0.1:{}", port + 1));
    assert_eq!(
        (other_port.status, other_port.body.as_str()),
        (502, "PermissionDenied")
    );
    let other_network = app.get(&format!("/probe/tcp?addr=127.0.1.1:{port}"));
    assert_eq!(other_network.body, "PermissionDenied");
    // A component with no grant has no sockets at all.
    let none = app.get(&format!("/tcp?addr=127.0.0.1:{port}"));
    assert_eq!(none.body, "PermissionDenied");
}

#[test]
fn a_component_may_not_attach_another_database_file() {
    let app = Up::probe().start().unwrap();
    let r = app.get("/probe/attach");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("not authorized"), "{}", r.body);
}

#[test]
fn self_requests_and_untriggered_components_are_as_in_spin() {
    let app = Up::probe().start().unwrap();
    // A relative URL goes to the application itself (allowed by http://self).
    let own = app.get("/probe/outbound?url=/probe/whoami");
    assert_eq!((own.status, own.body.as_str()), (200, "200 exact"));
    // The fallback component has no such grant.
    let refused = app.get("/outbound?url=/probe/whoami");
    assert!(
        refused.body.contains("HttpRequestDenied"),
        "{}",
        refused.body
    );
    // A component no trigger names is not a chaining destination, even when granted.
    let untriggered = app.get("/probe/outbound?url=http://untriggered.spin.internal/whoami");
    assert_eq!(untriggered.status, 502, "{}", untriggered.body);
    assert!(app.wait_for_output("unknown routing destination 'untriggered'"));
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
    // The chained request's spin-* headers are Spin's: no Host, so the URL names localhost;
    // the synthetic `/...` route with the whole path as path info; the unspecified client.
    let headers = app.get("/probe/outbound?url=http://private.spin.internal/deep/path?headers");
    assert_eq!(headers.status, 200, "{}", headers.body);
    for line in [
        "spin-full-url: http://localhost/deep/path?headers",
        "spin-path-info: /deep/path",
        "spin-matched-route: /...",
        "spin-raw-component-route: /...",
        "spin-component-route: ",
        "spin-client-addr: 0.0.0.0:0",
    ] {
        assert!(
            headers.body.lines().any(|l| l.ends_with(line) || l == line),
            "{line} not in {}",
            headers.body
        );
    }
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

#[test]
fn a_cold_start_serves_the_first_page_then_compiles_the_rest() {
    // An empty compile cache: only the component that answers `/` is compiled before the
    // server answers; a request to another one waits until it is compiled, then succeeds.
    let cache = tempfile::tempdir().unwrap();
    let app = Up::local()
        .arg("--cache-dir")
        .arg(cache.path().to_string_lossy())
        .start()
        .unwrap();
    let page = app.get("/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<html"), "{}", page.body);
    let staff = caseport_tests::demo::CASEY;
    let cookie = app.sign_in("staff", staff.0, staff.1);
    let r = app.call("GET", "/api/caseload", None, &[("cookie", &cookie)]);
    assert_eq!(r.status, 200, "{}", r.body);
    // Every component ends up compiled and cached (web, login, caseload, client-info,
    // reset-and-send, dev-mailbox, operator: seven files).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let cached = std::fs::read_dir(cache.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .count();
        if cached == 7 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{cached} cached");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(app.get("/dev/mailbox/api/messages").status, 200);
}

#[test]
fn core_wasm_modules_are_made_components_as_spin_makes_them() {
    let app = Up {
        manifest: Some(caseport_tests::core_manifest()),
        ..Up::default()
    }
    .start()
    .unwrap();
    // Built for wasm32-wasip1: its WASI preview 1 imports (here standard output) adapted.
    let r = app.get("/wasip1/there");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        "greeting=hello from a core module stored=/wasip1/there"
    );
    assert!(app.wait_for_output("core module answered /wasip1/there"));
}

#[test]
fn a_core_module_without_a_component_type_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    // The smallest core module: no component type, as Spin 1's modules.
    std::fs::write(dir.path().join("old.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(
        dir.path().join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"old\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"old\"\n[component.old]\nsource = \"old.wasm\"\n",
    )
    .unwrap();
    let (status, output) = Up {
        manifest: Some(dir.path().join("spin.toml")),
        ..Up::default()
    }
    .fail("127.0.0.1:0")
    .unwrap();
    assert!(!status.success());
    assert!(output.contains("spin-sdk 2 or later"), "{output}");
    assert!(output.contains("old"), "{output}");
}
