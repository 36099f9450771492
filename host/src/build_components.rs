//! `caseport build` and `caseport up --build`: runs each component's
//! `[component.NAME.build]` command, as `spin build` does, with its output shown as it runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::manifest::Manifest;

/// Runs the build commands of every component that has one, each distinct command once.
pub fn build_all(manifest: &Manifest) -> Result<()> {
    ensure_rust_targets(&manifest.dir)?;
    let mut done: Vec<(String, PathBuf)> = Vec::new();
    for (name, decl) in &manifest.components {
        let Some(build) = &decl.build else {
            println!(
                "Component {name} has no build command; using {}",
                decl.source
            );
            continue;
        };
        let workdir = match &build.workdir {
            Some(w) => manifest.dir.join(w),
            None => manifest.dir.clone(),
        };
        if done
            .iter()
            .any(|(c, w)| *c == build.command && *w == workdir)
        {
            continue;
        }
        println!("Building component {name} with `{}`", build.command);
        let status = Command::new("sh")
            .arg("-c")
            .arg(&build.command)
            .current_dir(&workdir)
            .status()
            .with_context(|| format!("cannot run the build command of component {name}"))?;
        if !status.success() {
            bail!(
                "{}: component.{name}.build.command `{}` failed ({status}); fix the error above and run again",
                manifest.path.display(),
                build.command
            );
        }
        done.push((build.command.clone(), workdir));
    }
    println!("Finished building all Spin components");
    Ok(())
}

/// `rust-toolchain.toml`: the parts that say which targets the build needs.
#[derive(Deserialize)]
struct ToolchainFile {
    toolchain: Toolchain,
}

#[derive(Deserialize)]
struct Toolchain {
    channel: Option<String>,
    #[serde(default)]
    targets: Vec<String>,
}

/// Installs the targets that the `rust-toolchain.toml` of `dir` (or of a directory above it)
/// names. Cargo does not install them, and `rustup toolchain install` adds none when the
/// pinned toolchain already exists; `rustup target add` does, and is quick when they are
/// there. Without rustup, the targets must already be part of the Rust installation.
pub fn ensure_rust_targets(dir: &Path) -> Result<()> {
    let Some((file, toolchain)) = find_toolchain_file(dir)? else {
        return Ok(());
    };
    if toolchain.targets.is_empty() {
        return Ok(());
    }
    let targets = toolchain.targets.join(" ");
    let mut add = Command::new("rustup");
    add.args(["target", "add"]);
    if let Some(channel) = &toolchain.channel {
        add.args(["--toolchain", channel]);
    }
    add.args(&toolchain.targets)
        .current_dir(dir)
        .stdout(Stdio::null());
    match add.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => bail!(
            "`rustup target add {targets}` failed ({status}), so the components cannot be built; \
             fix what rustup printed above (the toolchain of {} must be installable), then run again",
            file.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let missing = missing_targets(dir, &toolchain.targets);
            if missing.is_empty() {
                return Ok(());
            }
            bail!(
                "the components need Rust's {} target, and rustup, which installs it, is not on PATH: \
                 install rustup (https://rustup.rs) or add the target to your Rust installation, then run again",
                missing.join(" and ")
            )
        }
        Err(e) => bail!("cannot run rustup to add the {targets} target: {e}"),
    }
}

fn find_toolchain_file(dir: &Path) -> Result<Option<(PathBuf, Toolchain)>> {
    for d in dir.ancestors() {
        let file = d.join("rust-toolchain.toml");
        if let Ok(text) = std::fs::read_to_string(&file) {
            let parsed: ToolchainFile = toml::from_str(&text)
                .with_context(|| format!("{}: not a rust-toolchain.toml", file.display()))?;
            return Ok(Some((file, parsed.toolchain)));
        }
    }
    Ok(None)
}

/// The targets whose standard library the `rustc` on PATH lacks.
fn missing_targets(dir: &Path, targets: &[String]) -> Vec<String> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    targets
        .iter()
        .filter(|t| {
            sysroot
                .as_ref()
                .is_none_or(|s| !s.join("lib/rustlib").join(t).join("lib").is_dir())
        })
        .cloned()
        .collect()
}
