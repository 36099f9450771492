//! The one place that turns Caseport's answers into spin-sdk responses: every response of
//! every component gets the security headers here.

use caseport_shared::api_error::ApiError;
use caseport_shared::security_headers::SECURITY_HEADERS;
use serde::Serialize;
use spin_sdk::http::{Response, ResponseBuilder};

/// A response builder with the status and the security headers already set.
pub fn builder(status: u16) -> ResponseBuilder {
    let mut b = Response::builder();
    b.status(status);
    for (name, value) in SECURITY_HEADERS {
        b.header(*name, *value);
    }
    b
}

/// A JSON response. API answers are never cached.
pub fn json<T: Serialize>(status: u16, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => builder(status)
            .header("content-type", "application/json; charset=utf-8")
            .header("cache-control", "no-store")
            .body(body)
            .build(),
        Err(_) => error(&ApiError::new(
            500,
            "internal",
            "The answer could not be written.",
        )),
    }
}

/// The JSON error shape, with its status.
pub fn error(e: &ApiError) -> Response {
    builder(e.status)
        .header("content-type", "application/json; charset=utf-8")
        .header("cache-control", "no-store")
        .body(e.to_json())
        .build()
}

/// The answer of an API route whose component has not been built out yet.
pub fn not_implemented(what: &str) -> Response {
    error(&ApiError::new(
        501,
        "not_implemented",
        format!("{what} is not available in this version of Caseport."),
    ))
}
