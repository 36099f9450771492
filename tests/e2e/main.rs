//! End-to-end tests: `caseport up` with real wasm components, over real HTTP.
//!
//! One test binary, so the runtime and the components are built once per run.

mod caseport_app;
mod runtime;
mod startup_errors;
