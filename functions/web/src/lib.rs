//! The `web` component: serves the staff console and client portal from `static/`, embedded
//! at build time, with content types, ETags and cache headers; and `GET /api/openapi.yaml`.

// `#[http_component]` expands to the component's export glue, which is unsafe code.
#![allow(unsafe_code)]

use caseport_shared::api_error::ApiError;
use caseport_shared::security_headers::SECURITY_HEADERS;
use spin_sdk::http::{IncomingRequest, Method, ResponseOutparam};
use spin_sdk::http_component;

/// One embedded file.
pub struct Asset {
    path: &'static str,
    content_type: &'static str,
    etag: &'static str,
    body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS
        .binary_search_by(|a| a.path.cmp(path))
        .ok()
        .map(|i| &ASSETS[i])
}

/// What a path serves: the file itself, or the `index.html` of a directory.
enum Lookup {
    File(&'static Asset),
    AddSlash,
    Missing,
}

fn lookup(path: &str) -> Lookup {
    if path.split('/').any(|s| s == "..") {
        return Lookup::Missing;
    }
    if path.ends_with('/') {
        return find(&format!("{path}index.html")).map_or(Lookup::Missing, Lookup::File);
    }
    if let Some(asset) = find(path) {
        return Lookup::File(asset);
    }
    if find(&format!("{path}/index.html")).is_some() {
        return Lookup::AddSlash;
    }
    Lookup::Missing
}

#[http_component]
fn handle(req: IncomingRequest, out: ResponseOutparam) {
    // Only what the answer depends on is read from the host: the method, the path and
    // `If-None-Match` (each header or body the SDK would otherwise copy in is a call across
    // the component boundary, on every page and script a browser loads).
    let method = req.method();
    let head = matches!(method, Method::Head);
    if !head && !matches!(method, Method::Get) {
        return caseport_edge::send(
            out,
            caseport_edge::error(&ApiError::method_not_allowed(&["GET", "HEAD"])),
        );
    }
    let target = req.path_with_query().unwrap_or_default();
    let path = target.split_once('?').map_or(target.as_str(), |(p, _)| p);
    match lookup(path) {
        Lookup::File(asset) if etag_matches(&req, asset.etag) => send(
            out,
            304,
            &[
                ("etag", asset.etag.as_bytes()),
                ("cache-control", b"no-cache"),
            ],
            &[],
        ),
        Lookup::File(asset) => {
            let length = asset.body.len().to_string();
            let mut headers: Vec<(&str, &[u8])> = vec![
                ("content-type", asset.content_type.as_bytes()),
                ("etag", asset.etag.as_bytes()),
                // Revalidate every time: a changed page or script is picked up at once, an
                // unchanged one costs a 304.
                ("cache-control", b"no-cache"),
            ];
            if head {
                // HEAD has no body: the host would wait for the one a length announces.
                send(out, 200, &headers, &[]);
            } else {
                // With its length known, the host sends the page in one write, not chunks.
                headers.push(("content-length", length.as_bytes()));
                send(out, 200, &headers, asset.body);
            }
        }
        Lookup::AddSlash => send(
            out,
            308,
            &[("location", format!("{path}/").as_bytes())],
            &[],
        ),
        Lookup::Missing if path.starts_with("/api/") => {
            caseport_edge::send(out, caseport_edge::error(&ApiError::not_found()))
        }
        Lookup::Missing => match find("/404.html") {
            Some(page) => send(
                out,
                404,
                &[
                    ("content-type", page.content_type.as_bytes()),
                    ("cache-control", b"no-cache"),
                ],
                page.body,
            ),
            None => caseport_edge::send(out, caseport_edge::error(&ApiError::not_found())),
        },
    }
}

fn etag_matches(req: &IncomingRequest, etag: &str) -> bool {
    req.headers()
        .get("if-none-match")
        .iter()
        .filter_map(|v| std::str::from_utf8(v).ok())
        .any(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// Sends `status`, the security headers every answer carries, `headers` and `body`.
fn send(out: ResponseOutparam, status: u16, headers: &[(&str, &[u8])], body: &[u8]) {
    let fields = SECURITY_HEADERS
        .iter()
        .map(|(name, value)| (*name, value.as_bytes()))
        .chain(headers.iter().copied())
        .map(|(name, value)| (name.to_string(), value.to_vec()))
        .collect();
    caseport_edge::send_parts(out, status, fields, body);
}
