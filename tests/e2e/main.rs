//! End-to-end tests: `caseport up` with real wasm components, over real HTTP.
//!
//! One test binary, so the runtime and the components are built once per run.

// Test code: a failed expectation is a panic with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod architecture;
mod browser;
mod caseload;
mod caseport_app;
mod clinics;
mod deploy;
mod faults;
mod fuzz;
mod reset;
mod runtime;
mod security;
mod shared_state;
mod sign_in;
mod startup_errors;
