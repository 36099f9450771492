//! The `caseload` component: exports [`caseport_caseload_routes::handle`] as its HTTP handler.
//!
//! Built as `functions/login` is, and for the same reason: this crate is built at
//! `opt-level = 3` (the workspace's Cargo.toml), so that the argon2id hash of a new staff
//! member's temporary password, or a staff member's reset one, runs as fast as sign-in's;
//! every other crate keeps `opt-level = "s"`.

// `#[http_component]` expands to the component's export glue, which is unsafe code.
#![allow(unsafe_code)]

use spin_sdk::http::{IncomingRequest, ResponseOutparam};

#[spin_sdk::http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    caseport_caseload_routes::handle(incoming, out).await;
}
