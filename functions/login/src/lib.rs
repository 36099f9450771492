//! The `login` component: exports [`caseport_login_routes::handle`] as its HTTP handler.
//!
//! The component is a crate apart from its routes so that it can be optimised differently:
//! with link-time optimisation, the last crate's `opt-level` is the level the whole
//! component is optimised at. This crate is built at `opt-level = 3` (the workspace's
//! Cargo.toml), which lets LLVM unroll argon2id's block function: every sign-in hashes, and
//! the hash takes about a quarter less time. Every other crate keeps `opt-level = "s"`, so
//! the rest grows little (docs/BENCHMARKS.md).

// `#[http_component]` expands to the component's export glue, which is unsafe code.
#![allow(unsafe_code)]

use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    caseport_login_routes::handle(incoming, out).await;
}
