//! The `client-info` component: Client Information (read and correct a client) and the
//! client's history. Routes, parses and responds; the rules are in
//! `caseport_shared::client_info`.

// `#[http_component]` expands to the component's export glue, which is unsafe code.
#![allow(unsafe_code)]

use caseport_edge::{client_id, json, staff_request};
use caseport_shared::api_error::ApiError;
use caseport_shared::client_info;
use serde_json::json;
use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> Response {
    caseport_edge::respond(answer(&req))
}

fn answer(req: &Request) -> Result<Response, ApiError> {
    let history = req.path().trim_end_matches('/').ends_with("/history");
    match (history, req.method()) {
        (true, Method::Get) | (false, Method::Get | Method::Patch) => {}
        (true, _) => return Err(ApiError::method_not_allowed("GET")),
        (false, _) => return Err(ApiError::method_not_allowed("GET and PATCH")),
    }
    let id = client_id(req)?;
    let staff = staff_request(req)?;
    let ctx = staff.ctx();
    let (me, role) = (staff.me, staff.role);
    Ok(match (history, req.method()) {
        (true, _) => json(
            200,
            &json!({ "entries": client_info::history(&ctx, me, role, id)? }),
        ),
        (false, Method::Patch) => {
            let patch: client_info::Patch = staff.api.json()?;
            let (client, email_check) =
                client_info::update(&ctx, me, role, id, &patch, ctx.today())?;
            json(
                200,
                &json!({ "client": client, "email_check": email_check }),
            )
        }
        _ => json(
            200,
            &client_info::view(
                &ctx,
                me,
                role,
                id,
                ctx.today(),
                caseport_edge::mail_provider_status(),
            )?,
        ),
    })
}
