//! The `client-info` component: Client Information (read and correct a client) and the
//! client's history. Routes, parses and responds; the rules are in
//! `caseport_shared::client_info`. A corrected email is answered first; the notice to the
//! previous address goes out after.

// `#[http_component]` expands to the component's export glue, which is unsafe code.
#![allow(unsafe_code)]

use caseport_edge::outbound::WasiTransport;
use caseport_edge::{Env, Request, StaffRequest, client_id, json, staff_request};
use caseport_shared::api_error::ApiError;
use caseport_shared::client_info::{self, Client};
use caseport_shared::domain::{Account, Email};
use serde_json::json;
use spin_sdk::http::{IncomingRequest, Method, Response, ResponseOutparam};
use spin_sdk::http_component;

/// The notice to send once the correction is answered.
struct Notice {
    env: Env,
    staff: Account,
    client: Client,
    previous: Email,
}

#[http_component]
async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    caseport_edge::serve_then(incoming, out, answer, notify).await;
}

/// Tells the previous address of a changed email; a failure is in the client's history.
fn notify(n: Notice) {
    let sent = n.env.mail().and_then(|mail| {
        Ok(client_info::notify_email_changed(
            &n.env.ctx(),
            mail.as_ref(),
            &WasiTransport,
            n.staff,
            &n.client,
            &n.previous,
        )?)
    });
    if let Err(e) = sent {
        eprintln!("email change notice: not sent: {}", e.message);
    }
}

fn answer(req: &Request) -> Result<(Response, Option<Notice>), ApiError> {
    let history = req.path().trim_end_matches('/').ends_with("/history");
    match (history, req.method()) {
        (true, Method::Get) | (false, Method::Get | Method::Patch) => {}
        (true, _) => return Err(ApiError::method_not_allowed(&["GET"])),
        (false, _) => return Err(ApiError::method_not_allowed(&["GET", "PATCH"])),
    }
    let id = client_id(req)?;
    let staff = staff_request(req)?;
    let ctx = staff.ctx();
    let (me, role) = (staff.me, staff.role);
    let response = match (history, req.method()) {
        (true, _) => json(
            200,
            &json!({ "entries": client_info::history(&ctx, me, role, id)? }),
        ),
        (false, Method::Patch) => {
            let patch: client_info::Patch = staff.api.json()?;
            let updated = client_info::update(&ctx, me, role, id, &patch, ctx.today())?;
            let response = json(
                200,
                &json!({ "client": updated.client, "email_check": updated.email_check }),
            );
            let notice = updated.previous_email.map(|previous| {
                let StaffRequest { api, .. } = staff;
                Notice {
                    env: api.env,
                    staff: me,
                    client: updated.client,
                    previous,
                }
            });
            return Ok((response, notice));
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
    };
    Ok((response, None))
}
