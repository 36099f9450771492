//! `caseport`: a local, Spin-compatible runtime for Caseport's components.
//!
//! `caseport up` reads the same `spin.toml` and wasm files as `spin up` and serves them with
//! the same routing, state layout, variables and grants.

mod bindings;
mod build_components;
mod compile_cache;
mod componentize;
mod key_value;
mod manifest;
mod outbound_http;
mod request_log;
mod router;
mod runtime;
mod runtime_config;
mod server;
mod spin_ctx;
mod sqlite;
mod sqlite_pool;
mod variables;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::manifest::Manifest;
use crate::runtime::{App, Dirs, Limits};
use crate::runtime_config::RuntimeConfig;
use crate::variables::Resolver;

/// Every request allocates many small objects on several threads; mimalloc serves them 5–8%
/// faster than the system allocator here (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "caseport",
    version,
    about = "Run Caseport's Spin application locally"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Serve the application, as `spin up` does.
    Up(UpArgs),
    /// Run each component's build command, as `spin build` does.
    Build(BuildArgs),
    /// Measure how long making a fresh instance of each component takes (the per-request cost).
    TimeInstantiation(TimeArgs),
}

#[derive(clap::Args)]
struct BuildArgs {
    /// The application's manifest, or the directory holding spin.toml.
    #[arg(short = 'f', long = "from", default_value = ".")]
    from: PathBuf,
}

#[derive(clap::Args)]
struct TimeArgs {
    #[command(flatten)]
    app: AppArgs,
    /// Instantiations per component.
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
}

/// What names the application and its variables, for every subcommand.
#[derive(clap::Args)]
struct AppArgs {
    /// The application's manifest, or the directory holding spin.toml.
    #[arg(short = 'f', long = "from", default_value = ".")]
    from: PathBuf,
    /// Set application variables (repeatable): NAME=VALUE, NAME=@FILE (the file's content),
    /// or @FILE.json / @FILE.toml (a table of names and values).
    #[arg(
        long = "variable",
        value_name = "NAME=VALUE | NAME=@FILE | @FILE.json | @FILE.toml"
    )]
    variables: Vec<String>,
    /// Where compiled components are cached (default: ~/.cache/caseport).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

impl AppArgs {
    /// Reads the manifest and resolves its variables.
    fn load(&self) -> Result<(Manifest, Resolver)> {
        let manifest = Manifest::load(&self.from)?;
        let mut cli_vars = Vec::new();
        for v in &self.variables {
            cli_vars.extend(parse_variable(v)?);
        }
        // As Spin: the process environment, then a `.env` file in the working directory.
        let dotenv = read_dotenv(Path::new(".env"))?;
        let resolver = Resolver::new(&manifest, &cli_vars, |n| {
            std::env::var(n).ok().or_else(|| dotenv.get(n).cloned())
        })?;
        Ok((manifest, resolver))
    }

    fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(default_cache_dir)
    }
}

#[derive(clap::Args)]
struct UpArgs {
    #[command(flatten)]
    app: AppArgs,
    /// Run each component's build command first.
    #[arg(long)]
    build: bool,
    /// The address to listen on (port 0 picks a free port); also SPIN_HTTP_LISTEN_ADDR.
    #[arg(
        long,
        env = "SPIN_HTTP_LISTEN_ADDR",
        default_value = "127.0.0.1:3000",
        value_parser = parse_listen
    )]
    listen: SocketAddr,
    /// Where key-value and SQLite data live (default: .spin beside the manifest).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Spin's runtime config: where each key-value store and SQLite database lives (a local
    /// file, a Redis server, a libSQL server).
    #[arg(long)]
    runtime_config_file: Option<PathBuf>,
    /// Seconds one request may take before it is stopped and answered 503.
    #[arg(long, default_value_t = 30.0)]
    request_timeout: f64,
    /// Linear memory one instance may use, in MiB.
    #[arg(long, default_value_t = 128)]
    memory_limit_mib: usize,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_request_body: usize,
    /// Instances that may run at once.
    #[arg(long, default_value_t = 128)]
    max_instances: u32,
    /// Requests one component may run at once; more wait (--queue-timeout), then get 503.
    #[arg(long, default_value_t = 16)]
    max_concurrent: usize,
    /// Seconds a request may wait for its component to have room.
    #[arg(long, default_value_t = 2.0)]
    queue_timeout: f64,
    /// Connections open at once; more wait to be accepted.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a client may take to send a request's headers (also how long an idle
    /// connection stays open).
    #[arg(long, default_value_t = 10.0)]
    header_timeout: f64,
    /// Seconds a client may take to send a request's body.
    #[arg(long, default_value_t = 30.0)]
    body_timeout: f64,
    /// Another host name a loopback listener answers (repeatable): by default it answers only
    /// localhost, *.localhost and loopback addresses, against DNS rebinding.
    #[arg(long = "allow-host", value_name = "NAME")]
    allow_hosts: Vec<String>,
}

/// A positive number of seconds from a flag.
fn seconds(flag: &str, value: f64) -> Result<Duration> {
    if !(value > 0.0 && value.is_finite()) {
        bail!("--{flag} must be a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(value))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::Up(args) => up(args),
        Commands::Build(args) => {
            Manifest::load(&args.from).and_then(|m| build_components::build_all(&m))
        }
        Commands::TimeInstantiation(args) => time_instantiation(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One `--variable`, as Spin reads it: `NAME=VALUE`, `NAME=@FILE` (the file's content, as it
/// is), or `@FILE.json` / `@FILE.toml` (a table of names and string values).
fn parse_variable(text: &str) -> Result<Vec<(String, String)>> {
    if let Some(file) = text.strip_prefix('@') {
        let content = std::fs::read_to_string(file)
            .with_context(|| format!("--variable {text}: cannot read {file}"))?;
        let table: BTreeMap<String, String> =
            match Path::new(file).extension().and_then(|e| e.to_str()) {
                Some("json") => serde_json::from_str(&content).with_context(|| {
                    format!("--variable {text}: {file} is not a JSON object of strings")
                })?,
                Some("toml") => toml::from_str(&content).with_context(|| {
                    format!("--variable {text}: {file} is not a TOML table of strings")
                })?,
                _ => bail!("--variable {text}: variable files must end in .json or .toml"),
            };
        for name in table.keys() {
            manifest::check_variable_name(name).with_context(|| format!("--variable {text}"))?;
        }
        return Ok(table.into_iter().collect());
    }
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => {
            manifest::check_variable_name(name).with_context(|| format!("--variable {text}"))?;
            let value = match value.strip_prefix('@') {
                Some(file) => std::fs::read_to_string(file)
                    .with_context(|| format!("--variable {name}=@{file}: cannot read {file}"))?,
                None => value.to_string(),
            };
            Ok(vec![(name.to_string(), value)])
        }
        _ => bail!("--variable {text}: variables must be in the form 'key=value' or '@file'"),
    }
}

/// The `SPIN_VARIABLE_*` entries of a `.env` file, if there is one.
fn read_dotenv(path: &Path) -> Result<BTreeMap<String, String>> {
    let entries = match dotenvy::from_path_iter(path) {
        Ok(entries) => entries,
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(BTreeMap::new());
        }
        Err(e) => bail!("{}: {e}", path.display()),
    };
    let mut out = BTreeMap::new();
    for entry in entries {
        let (k, v) = entry.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if k.starts_with("SPIN_VARIABLE_") {
            out.insert(k, v);
        }
    }
    Ok(out)
}

/// `--listen`: an address or a host name with a port (`localhost:3000`); of the addresses a
/// name has, 127.0.0.1 is preferred, as Spin does.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("{text} is not an address to listen on: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST)
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{text} names no address"))
}

fn async_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn up(args: UpArgs) -> Result<()> {
    let (manifest, mut resolver) = args.app.load()?;
    let limits = Limits {
        memory_bytes: args.memory_limit_mib << 20,
        request_timeout: seconds("request-timeout", args.request_timeout)?,
        max_request_body: args.max_request_body,
        max_instances: args.max_instances.max(1),
        max_concurrent: args.max_concurrent.max(1),
        queue_timeout: seconds("queue-timeout", args.queue_timeout)?,
        max_connections: args.max_connections.max(1),
        header_timeout: seconds("header-timeout", args.header_timeout)?,
        body_timeout: seconds("body-timeout", args.body_timeout)?,
        allowed_hosts: args
            .allow_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
    };
    if args.build {
        build_components::build_all(&manifest)?;
    }
    let runtime_config = match &args.runtime_config_file {
        Some(path) => {
            let config = RuntimeConfig::load(path)?;
            eprintln!(
                "Using runtime config {} from {:?}",
                config.summary(),
                path.display().to_string()
            );
            config
        }
        None => RuntimeConfig::default(),
    };
    let dirs = Dirs {
        state: args.state_dir.unwrap_or_else(|| manifest.dir.join(".spin")),
        cache: args.app.cache_dir(),
    };
    async_runtime()?.block_on(async move {
        let listener = server::bind(args.listen).await?;
        let addr = listener.local_addr()?;
        if let Some(name) = &manifest.own_url_variable {
            let url = own_url(addr);
            if resolver.default_to(name, url.clone()) {
                eprintln!(
                    "Links in emails point to {url} (variable {name}); set --variable {name}=URL for another address"
                );
            }
        }
        let app = App::load(&manifest, &resolver, &dirs, &runtime_config, limits)?;
        app.set_local_addr(addr);
        for line in app.storage_summary() {
            eprintln!("{line}");
        }
        println!("Serving {} at http://{addr}", manifest.name);
        println!("Available Routes:");
        for (route, index) in app.router.routes() {
            println!(
                "  {}: http://{addr}{}",
                app.grants(*index).component,
                route.text()
            );
        }
        if let Some(route) = manifest.status_route.clone() {
            tokio::spawn(server::report_status(app.clone(), route, addr));
        }
        server::serve(app, listener).await
    })
}

/// The address people on this computer reach a listener at: its own, or `localhost` for one
/// on every address.
fn own_url(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

fn time_instantiation(args: TimeArgs) -> Result<()> {
    let (manifest, resolver) = args.app.load()?;
    let state = std::env::temp_dir().join(format!("caseport-time-{}", std::process::id()));
    let dirs = Dirs {
        state: state.clone(),
        cache: args.app.cache_dir(),
    };
    let limits = Limits::defaults();
    let result = async_runtime()?.block_on(async {
        let app = App::load(
            &manifest,
            &resolver,
            &dirs,
            &RuntimeConfig::default(),
            limits,
        )?;
        println!("component\tmean_us\tp50_us\tp99_us\titerations");
        for name in manifest.components.keys() {
            let mut times = app.time_instantiation(name, args.iterations.max(1)).await?;
            times.sort();
            let micros = |d: Duration| d.as_secs_f64() * 1e6;
            let mean = times.iter().map(|d| micros(*d)).sum::<f64>() / times.len() as f64;
            let pick = |q: f64| micros(times[((times.len() - 1) as f64 * q) as usize]);
            println!(
                "{name}\t{mean:.1}\t{:.1}\t{:.1}\t{}",
                pick(0.5),
                pick(0.99),
                times.len()
            );
        }
        anyhow::Ok(())
    });
    let _ = std::fs::remove_dir_all(&state);
    result
}

fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("caseport")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_a_name_and_prefers_ipv4_loopback() {
        assert_eq!(
            parse_listen("localhost:0"),
            Ok("127.0.0.1:0"
                .parse()
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 1))))
        );
        assert!(parse_listen("not an address").is_err());
    }

    #[test]
    fn variables_are_read_as_spin_reads_them() -> Result<()> {
        assert_eq!(
            parse_variable("greeting=hello=there")?,
            vec![("greeting".to_string(), "hello=there".to_string())]
        );
        let bad = |text: &str| {
            parse_variable(text)
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default()
        };
        assert!(bad("greeting").contains("in the form 'key=value' or '@file'"));
        assert!(
            bad("@vars.yaml").contains("cannot read")
                || bad("@vars.yaml").contains(".json or .toml")
        );
        let dir = std::env::temp_dir().join(format!("caseport-vars-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let yaml = dir.join("vars.yaml");
        std::fs::write(&yaml, "a: b")?;
        assert!(bad(&format!("@{}", yaml.display())).contains("must end in .json or .toml"));
        let toml_file = dir.join("vars.toml");
        std::fs::write(&toml_file, "greeting = \"from toml\"\n")?;
        assert_eq!(
            parse_variable(&format!("@{}", toml_file.display()))?,
            vec![("greeting".to_string(), "from toml".to_string())]
        );
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
