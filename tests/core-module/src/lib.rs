//! A test component built for `wasm32-wasip1`: a core wasm module with its component type
//! embedded by wit-bindgen (spin-sdk), as Spin's templates built them before components. It
//! answers a variable and a key-value round trip, and prints to standard output (WASI
//! preview 1), so a test sees the imports work once the runtime wrapped it.

// `#[http_component]` expands to the component's export glue, which is unsafe code.
#![allow(unsafe_code)]

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::{key_value, variables};

#[http_component]
fn handle(req: Request) -> Response {
    let greeting = variables::get("greeting").unwrap_or_else(|e| format!("no variable: {e}"));
    let stored = key_value::Store::open_default()
        .and_then(|store| {
            store.set("core-module", req.path().as_bytes())?;
            store.get("core-module")
        })
        .map(|v| String::from_utf8_lossy(&v.unwrap_or_default()).into_owned())
        .unwrap_or_else(|e| format!("no key-value: {e}"));
    // Standard output goes through WASI preview 1 on wasm32-wasip1: the adapter's work.
    println!("core module answered {}", req.path());
    Response::builder()
        .status(200)
        .header("content-type", "text/plain; charset=utf-8")
        .body(format!("greeting={greeting} stored={stored}"))
        .build()
}
