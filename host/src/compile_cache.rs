//! Compiled components cached on disk, so a second start does not recompile.
//!
//! The file name is a SHA-256 of the engine's compatibility hash and the wasm bytes; only
//! files this module wrote are ever read back.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

fn cache_file(engine: &Engine, wasm: &[u8], dir: &Path) -> PathBuf {
    let mut engine_hash = DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let mut sha = Sha256::new();
    sha.update(engine_hash.finish().to_le_bytes());
    sha.update(env!("CARGO_PKG_VERSION"));
    sha.update(wasm);
    let digest = sha.finalize();
    let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{name}.cwasm"))
}

/// The compiled component for `wasm` (a component: core modules are made components before),
/// from the cache in `dir` or compiled and stored there.
pub fn component(engine: &Engine, wasm: &[u8], dir: &Path) -> Result<Component> {
    let file = cache_file(engine, wasm, dir);
    if file.exists() {
        // SAFETY: the file is named after the hash of the engine configuration and of the
        // source, lives in the runtime's own cache directory, and was written by
        // `Component::serialize` below; wasmtime also checks the engine compatibility header.
        #[allow(unsafe_code)]
        let cached = unsafe { Component::deserialize_file(engine, &file) };
        if let Ok(component) = cached {
            return Ok(component);
        }
    }
    let component = Component::new(engine, wasm)
        .map_err(anyhow::Error::from)
        .context("not a valid wasm component")?;
    if let Ok(bytes) = component.serialize() {
        // A cache that cannot be written only costs the next start a compile.
        let _ = std::fs::create_dir_all(dir).and_then(|_| {
            let tmp = file.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &file)
        });
    }
    Ok(component)
}
