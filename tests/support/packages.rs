//! Debian packages the tests need (chromium, chromium-driver, iproute2, …), installed when
//! missing, as the harness installs the wasm target: a fresh machine needs only the README's
//! commands. Without root (or password-less sudo) the tests that need them fail and say why;
//! they never skip.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The first of `names` found on PATH, as a full path.
pub fn find_program(names: &[&str]) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
            .map(|p| p.to_string_lossy().into_owned())
    })
}

/// Installs a package that no program of its own shows to be missing (such as
/// python3-venv), unless dpkg says it is installed.
pub fn ensure_package(package: &str) {
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"));
    if !installed {
        install(&[package]);
    }
}

/// Makes sure each `(program, package)` is there, installing the packages of those that are
/// not with apt-get (once per package per test run; one apt-get at a time).
pub fn ensure(programs: &[(&str, &str)]) {
    static TRIED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let Ok(mut tried) = TRIED.lock() else { return };
    let missing: Vec<&str> = programs
        .iter()
        .filter(|(program, package)| {
            find_program(&[program]).is_none() && !tried.contains(*package)
        })
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return;
    }
    tried.extend(missing.iter().map(|p| p.to_string()));
    install(&missing);
}

/// Installs `packages` with apt-get (as root, or with password-less sudo).
fn install(packages: &[&str]) {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        c.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut install = vec!["install", "-y", "-q"];
    install.extend(packages);
    let _ = apt(&["update", "-q"]) && apt(&install);
}

/// A Python virtual environment under `target/`, with `requirements` (a path in the
/// repository, pinned with hashes) installed; made again only when they change.
pub fn venv(requirements: &str) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::{Context, bail};
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let file = crate::root().join(requirements);
    let wanted = std::fs::read_to_string(&file)?;
    let name = requirements.replace(['/', '.'], "-");
    let venv = crate::root().join("target/venv").join(name);
    let marker = venv.join("caseport-requirements.txt");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(venv);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let python = find_program(&["python3"]).context("python3 is not installed")?;
    let made = || {
        Command::new(&python)
            .args(["-m", "venv"])
            .arg(&venv)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !made() {
        // Debian's python3 keeps venv in a package of its own.
        ensure_package("python3-venv");
        if !made() {
            bail!("python3 cannot make a virtual environment: install python3-venv");
        }
    }
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--require-hashes", "--no-deps", "-r"])
        .arg(&file)
        .status()
        .context("cannot run pip")?;
    if !status.success() {
        bail!("pip could not install {requirements} ({status})");
    }
    std::fs::write(&marker, wanted)?;
    Ok(venv)
}
