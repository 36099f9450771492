//! Caseport's core: the rules of the product, as plain Rust over small storage traits.
//!
//! **Architecture invariant:** this crate knows nothing of spin-sdk or of an HTTP library.
//! What an answer looks like on the wire (status numbers, header names, JSON error bodies)
//! is described here as plain data, so every component answers alike.

pub mod api_error;
pub mod audit;
pub mod auth;
pub mod caseload;
pub mod client_info;
pub mod clients;
pub mod clinics;
pub mod credentials;
pub mod ctx;
pub mod deliveries;
pub mod demo;
pub mod domain;
pub mod local_only;
pub mod mail;
pub mod names;
#[cfg(feature = "native")]
pub mod native;
pub mod operator;
pub mod passwords;
pub mod policy;
pub mod portal_resets;
pub mod ports;
pub mod request;
pub mod reset;
pub mod schema;
pub mod security_headers;
pub mod settings;
pub mod staff;
pub mod status;
#[cfg(test)]
mod testing;
pub mod throttle;
pub mod tokens;
pub mod zones;
