//! `caseport up --build`: runs each component's `[component.NAME.build]` command, as
//! `spin build` does, with its output shown as it runs.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::manifest::Manifest;

/// Runs the build commands of every component that has one, each distinct command once.
pub fn build_all(manifest: &Manifest) -> Result<()> {
    ensure_rust_targets(&manifest.dir);
    let mut done: Vec<(String, std::path::PathBuf)> = Vec::new();
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

/// Cargo does not install a target that `rust-toolchain.toml` names; `rustup toolchain
/// install` in the application directory does, and is quick when all is there already.
fn ensure_rust_targets(dir: &Path) {
    if !dir.join("rust-toolchain.toml").exists() {
        return;
    }
    let installed = Command::new("rustup")
        .args(["toolchain", "install"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .status();
    if let Ok(status) = installed
        && !status.success()
    {
        eprintln!("`rustup toolchain install` failed; the build may lack the wasm32-wasip2 target");
    }
}
