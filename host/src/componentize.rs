//! Core wasm modules as components, as Spin loads them: a module built with wit-bindgen 0.5
//! or newer (spin-sdk 2 and later, or wit-bindgen directly, for `wasm32-unknown-unknown` or
//! `wasm32-wasip1`) carries its component type in a custom section; `wit-component` wraps it
//! into a component, adapting any WASI preview 1 imports with wasmtime's preview 1 adapter
//! (the reactor one, as Spin does for such modules). Modules of Spin 1's older ABI
//! (wit-bindgen 0.2, or no component type at all) are refused with the fix.

use std::borrow::Cow;

use anyhow::{Context, Result, bail};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wasmparser::{Encoding, Parser, Payload};
use wit_component::ComponentEncoder;

/// `wasm` as a component: unchanged if it is one, wrapped if it is a core module.
pub fn component_bytes(wasm: &[u8]) -> Result<Cow<'_, [u8]>> {
    let mut custom_type = false;
    let mut preview1 = false;
    let mut encoding = None;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.context("not a wasm binary")? {
            Payload::Version {
                encoding: Encoding::Component,
                ..
            } => return Ok(Cow::Borrowed(wasm)),
            Payload::Version { encoding: e, .. } => encoding = Some(e),
            Payload::CustomSection(s) if s.name().starts_with("component-type") => {
                custom_type = true;
            }
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    if import.context("malformed import section")?.module
                        == WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME
                    {
                        preview1 = true;
                    }
                }
            }
            _ => {}
        }
    }
    if encoding.is_none() {
        bail!("not a wasm binary");
    }
    if !custom_type {
        bail!(
            "a core wasm module without a component type (built for Spin 1's ABI, or without wit-bindgen): rebuild it with spin-sdk 2 or later, or as a component (wasm32-wasip2)"
        );
    }
    let mut encoder = ComponentEncoder::default()
        .validate(true)
        .module(wasm)
        .context("cannot read the module's component type")?;
    if preview1 {
        encoder = encoder
            .adapter(
                WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
            .context("cannot adapt the module's WASI preview 1 imports")?;
    }
    Ok(Cow::Owned(
        encoder
            .encode()
            .context("cannot make a component of the core module")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_is_passed_through_and_garbage_is_refused() {
        // The smallest component: the preamble alone.
        let component = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
        assert!(matches!(component_bytes(&component), Ok(Cow::Borrowed(_))));
        assert!(component_bytes(b"not wasm").is_err());
    }

    #[test]
    fn a_module_without_a_component_type_names_the_fix() {
        // The smallest core module: the preamble alone.
        let module = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
        let e = format!(
            "{:#}",
            component_bytes(&module)
                .err()
                .unwrap_or_else(|| anyhow::anyhow!(""))
        );
        assert!(e.contains("spin-sdk 2 or later"), "{e}");
    }
}
