//! The `client-info` component: the HTTP adapter for Client Information.

// `#[http_component]` expands to the component's export glue, which is unsafe code.
#![allow(unsafe_code)]

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(_req: Request) -> Response {
    caseport_edge::not_implemented("Client Information")
}
