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
use crate::procs::{cpu_time_with_children, threads_of};

const SECONDS: f64 = 5.0;

/// nginx (Debian's nginx-light) serving a copy of `index.html`, stopped when dropped.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn start(page: &Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        packages::ensure(&[("nginx", "nginx-light")]);
        let exe = packages::find_program(&["nginx"])
            .context("nginx is not installed: apt-get install nginx-light")?;
        // Started as root, nginx reads files as its unprivileged worker user, which may not
        // enter the checkout (a home directory, or a clone in a `mktemp -d` directory): it
        // serves a copy from a directory anyone may read.
        let dir = tempfile::tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let www = dir.path().join("www");
        std::fs::create_dir(&www)?;
        std::fs::set_permissions(&www, std::fs::Permissions::from_mode(0o755))?;
        std::fs::copy(page, www.join("index.html"))
            .with_context(|| format!("cannot copy {}", page.display()))?;
        std::fs::set_permissions(
            www.join("index.html"),
            std::fs::Permissions::from_mode(0o644),
        )?;
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
            www.display()
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
        let nginx = Self { child, addr, dir };
        // A reference that answers errors would make every ratio meaningless.
        if let Err(e) = ureq::get(&format!("http://{addr}/")).call() {
            let log =
                std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default();
            bail!("nginx does not serve the page ({e}); its error log:\n{log}");
        }
        Ok(nginx)
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

/// Loads the server whose process is `pid` and measures the CPU time it used meanwhile.
fn measured(
    pid: u32,
    load: impl FnOnce() -> Result<http_load::Run>,
) -> Result<(http_load::Run, Duration)> {
    let before = cpu_time_with_children(pid)?;
    let run = load()?;
    Ok((run, cpu_time_with_children(pid)?.saturating_sub(before)))
}

fn row(
    label: &str,
    connections: usize,
    (mut run, cpu): (http_load::Run, Duration),
    reference: Option<f64>,
) -> f64 {
    let rps = run.per_second();
    let ratio = match reference {
        None => String::new(),
        Some(r) if r > 0.0 => format!("{:.2}×", rps / r),
        Some(_) => "— (nginx answered nothing)".to_string(),
    };
    let cpu_per_request = cpu.as_secs_f64() * 1e6 / run.requests.max(1) as f64;
    println!(
        "| {label} | {connections} | {rps:.0} | {:.0} | {:.0} | {} | {cpu_per_request:.0} | {ratio} |",
        run.micros(0.5),
        run.micros(0.99),
        run.errors
    );
    rps
}

pub fn section() -> Result<()> {
    println!("\n## The per-request path against nginx\n");
    println!(
        "Keep-alive connections, {SECONDS} s per row, the same load client (xtask's, on the same 2 cores); nginx-light with `worker_processes auto` serving the same `static/index.html`. Server CPU per request: the user and system time the server (nginx: its master and workers) used during the row, over the requests answered. Ratio: requests per second against nginx's on the same row.\n"
    );
    println!(
        "| server and request | connections | requests/s | p50 (µs) | p99 (µs) | errors | server CPU per request (µs) | against nginx |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let nginx = Nginx::start(&root().join("static/index.html"))?;
    // Its request log goes to a file, as an operator's would.
    let log = tempfile::tempdir()?;
    let app = Up {
        log_file: Some(log.path().join("caseport.log")),
        ..Up::caseport()
    }
    .variable("demo_data", "true")
    .start()?;
    let caseport: SocketAddr = app.base.parse()?;
    let page =
        |addr: SocketAddr, connections| http_load::run(&[addr], "/", &[], connections, SECONDS);
    for connections in [1usize, 32] {
        let reference = row(
            "nginx, GET /",
            connections,
            measured(nginx.child.id(), || page(nginx.addr, connections))?,
            None,
        );
        row(
            "caseport up, GET / (`web`)",
            connections,
            measured(app.pid(), || page(caseport, connections))?,
            Some(reference),
        );
    }
    let cookie = app.sign_in("staff", CASEY.0, CASEY.1);
    let caseload = |connections| {
        http_load::run(
            &[caseport],
            "/api/caseload",
            &[("cookie", &cookie)],
            connections,
            SECONDS,
        )
    };
    for connections in [1usize, 32] {
        row(
            "caseport up, signed-in GET /api/caseload (`caseload`: session, SQLite; the list is not audited, opening a client is)",
            connections,
            measured(app.pid(), || caseload(connections))?,
            None,
        );
    }
    // At one connection every answer wakes the load client and every request the server. On
    // this virtual machine a wake-up on the other CPU costs tens of microseconds, so the rows
    // above at one connection measure where the scheduler happened to put the threads as much
    // as the servers. With server and client on one CPU nothing waits for another: these rows
    // compare the work each server does for a request.
    let reference = row(
        "nginx, GET /, server and client on one CPU",
        1,
        on_one_cpu(&[nginx.child.id()], || {
            measured(nginx.child.id(), || page(nginx.addr, 1))
        })?,
        None,
    );
    row(
        "caseport up, GET / (`web`), server and client on one CPU",
        1,
        on_one_cpu(&[app.pid()], || measured(app.pid(), || page(caseport, 1)))?,
        Some(reference),
    );
    row(
        "caseport up, signed-in GET /api/caseload, server and client on one CPU",
        1,
        on_one_cpu(&[app.pid()], || measured(app.pid(), || caseload(1)))?,
        None,
    );
    Ok(())
}

/// Runs `f` with the calling thread (and so the load client's threads it starts) and every
/// thread of processes `pids` and of their children on the first CPU this thread may use, then
/// lets them all use what this thread could before.
fn on_one_cpu<T>(pids: &[u32], f: impl FnOnce() -> Result<T>) -> Result<T> {
    use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
    use nix::unistd::Pid;
    let me = Pid::from_raw(0);
    let all = sched_getaffinity(me)?;
    let first = (0..CpuSet::count())
        .find(|&cpu| all.is_set(cpu).unwrap_or(false))
        .context("this thread may run on no CPU")?;
    let mut one = CpuSet::new();
    one.set(first)?;
    let pin = |set: &CpuSet| -> Result<()> {
        for tid in threads_of(pids)? {
            // A thread that has just ended has nothing to pin.
            let _ = sched_setaffinity(Pid::from_raw(tid), set);
        }
        sched_setaffinity(me, set)?;
        Ok(())
    };
    pin(&one)?;
    let result = f();
    pin(&all)?;
    result
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
