//! `cargo xtask bench-speed` (also part of `cargo xtask bench`): the per-request path of
//! `caseport up` against nginx answering the same `index.html` on the same machine, and a
//! signed-in My Caseload, with the same load client (`http_load`).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use caseport_tests::demo::CASEY;
use caseport_tests::{Up, packages, root};

use crate::http_load;

const SECONDS: f64 = 5.0;

/// nginx (Debian's nginx-light) serving the static pages, stopped when dropped.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(root_dir: &Path) -> Result<Self> {
        packages::ensure(&[("nginx", "nginx-light")]);
        let exe = packages::find_program(&["nginx"])
            .context("nginx is not installed: apt-get install nginx-light")?;
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let d = dir.path().display();
        let config = format!(
            "worker_processes auto;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             types {{ text/html html; }}\n  keepalive_requests 1000000;\n  \
             server {{\n    listen 127.0.0.1:{port};\n    root {};\n    index index.html;\n  }}\n}}\n",
            root_dir.display()
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config)?;
        let child = Command::new(exe)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nginx")?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                bail!("nginx did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            child,
            addr,
            _dir: dir,
        })
    }
}

impl Drop for Nginx {
    /// SIGTERM, not SIGKILL: the master stops its workers before it exits (killed, it would
    /// leave them running).
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_err() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn row(label: &str, connections: usize, mut run: http_load::Run, reference: Option<f64>) -> f64 {
    let rps = run.per_second();
    let ratio = reference.map_or("".to_string(), |r| format!("{:.2}×", rps / r));
    println!(
        "| {label} | {connections} | {rps:.0} | {:.0} | {:.0} | {} | {ratio} |",
        run.micros(0.5),
        run.micros(0.99),
        run.errors
    );
    rps
}

pub fn section() -> Result<()> {
    println!("\n## The per-request path against nginx\n");
    println!(
        "Keep-alive connections, {SECONDS} s per row, the same load client (xtask's, on the same 2 cores); nginx-light with `worker_processes auto` serving the same `static/index.html`. Ratio: requests per second against nginx's on the same row.\n"
    );
    println!(
        "| server and request | connections | requests/s | p50 (µs) | p99 (µs) | errors | against nginx |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let nginx = Nginx::start(&root().join("static"))?;
    // Its request log goes to a file, as an operator's would.
    let log = tempfile::tempdir()?;
    let app = Up {
        log_file: Some(log.path().join("caseport.log")),
        ..Up::caseport()
    }
    .variable("demo_data", "true")
    .start()?;
    let caseport: SocketAddr = app.base.parse()?;
    for connections in [1usize, 32] {
        let reference = row(
            "nginx, GET /",
            connections,
            http_load::run(&[nginx.addr], "/", &[], connections, SECONDS)?,
            None,
        );
        row(
            "caseport up, GET / (`web`)",
            connections,
            http_load::run(&[caseport], "/", &[], connections, SECONDS)?,
            Some(reference),
        );
    }
    let cookie = app.sign_in("staff", CASEY.0, CASEY.1);
    for connections in [1usize, 32] {
        row(
            "caseport up, signed-in GET /api/caseload (`caseload`: session, SQLite; the list is not audited, opening a client is)",
            connections,
            http_load::run(
                &[caseport],
                "/api/caseload",
                &[("cookie", &cookie)],
                connections,
                SECONDS,
            )?,
            None,
        );
    }
    Ok(())
}

/// `cargo xtask load ADDR PATH CONNECTIONS SECONDS [HEADER: VALUE]`: load a running server
/// and print one line (for profiling it meanwhile).
pub fn load_only(args: &[String]) -> Result<()> {
    let [addr, path, connections, seconds, rest @ ..] = args else {
        bail!("usage: cargo xtask load ADDR PATH CONNECTIONS SECONDS [HEADER: VALUE]");
    };
    let headers: Vec<(&str, &str)> = rest.iter().filter_map(|h| h.split_once(": ")).collect();
    let mut run = http_load::run(
        &[addr.parse()?],
        path,
        &headers,
        connections.parse()?,
        seconds.parse()?,
    )?;
    println!(
        "{:.0} requests/s, p50 {:.0} µs, p99 {:.0} µs, {} errors",
        run.per_second(),
        run.micros(0.5),
        run.micros(0.99),
        run.errors
    );
    Ok(())
}
