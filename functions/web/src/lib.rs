//! The `web` component: serves the staff console and client portal from `static/`, embedded
//! at build time, with content types, ETags and cache headers; and `GET /api/openapi.yaml`.

// `#[http_component]` expands to the component's export glue, which is unsafe code.
#![allow(unsafe_code)]

use caseport_shared::api_error::ApiError;
use spin_sdk::http::{Method, Request, Response};
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

fn etag_matches(req: &Request, etag: &str) -> bool {
    req.header("if-none-match")
        .and_then(|v| v.as_str())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

#[http_component]
fn handle(req: Request) -> Response {
    let head = matches!(req.method(), Method::Head);
    if !head && !matches!(req.method(), Method::Get) {
        return caseport_edge::error(&ApiError::method_not_allowed(&["GET", "HEAD"]));
    }
    let path = req.path();
    match lookup(path) {
        Lookup::File(asset) if etag_matches(&req, asset.etag) => caseport_edge::builder(304)
            .header("etag", asset.etag)
            .header("cache-control", "no-cache")
            .build(),
        Lookup::File(asset) => {
            let mut b = caseport_edge::builder(200);
            b.header("content-type", asset.content_type)
                .header("etag", asset.etag)
                // Revalidate every time: a changed page or script is picked up at once, an
                // unchanged one costs a 304.
                .header("cache-control", "no-cache");
            if head {
                b.build()
            } else {
                // With its length known, the host sends the page in one write instead of
                // chunks (HEAD has none: the host would wait for the body it announces).
                b.header("content-length", asset.body.len().to_string())
                    .body(asset.body.to_vec())
                    .build()
            }
        }
        Lookup::AddSlash => caseport_edge::builder(308)
            .header("location", format!("{path}/"))
            .build(),
        Lookup::Missing if path.starts_with("/api/") => {
            caseport_edge::error(&ApiError::not_found())
        }
        Lookup::Missing => match find("/404.html") {
            Some(page) => caseport_edge::builder(404)
                .header("content-type", page.content_type)
                .header("cache-control", "no-cache")
                .body(page.body.to_vec())
                .build(),
            None => caseport_edge::error(&ApiError::not_found()),
        },
    }
}
