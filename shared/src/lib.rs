//! Caseport's core: the rules of the product, as plain Rust.
//!
//! **Architecture invariant:** this crate knows nothing of spin-sdk or of an HTTP library.
//! What an answer looks like on the wire (status numbers, header names, JSON error bodies)
//! is described here as plain data, so every component answers alike.

pub mod api_error;
pub mod security_headers;
