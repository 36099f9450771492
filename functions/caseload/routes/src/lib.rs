//! What the `caseload` component answers: My Caseload and Show All Clients, Add Client, and
//! staff management for administrators. Routes, parses and responds; the rules are in
//! `caseport_shared::{caseload, staff}`. The component itself (`functions/caseload`) only
//! exports [`handle`].

use caseport_edge::outbound::WasiTransport;
use caseport_edge::{Request, client_id, json, path_id, staff_request};
use caseport_shared::api_error::ApiError;
use caseport_shared::{caseload, client_info, staff};
use serde_json::json;
use spin_sdk::http::{IncomingRequest, Method, Response, ResponseOutparam};

/// Answers one request.
pub async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    caseport_edge::serve(incoming, out, answer).await;
}

fn answer(req: &Request) -> Result<Response, ApiError> {
    let path = req.path().trim_end_matches('/').to_string();
    let method = req.method().clone();
    let route = match (path.as_str(), &method) {
        ("/api/caseload", Method::Get) => "caseload",
        ("/api/caseload", _) => return Err(ApiError::method_not_allowed(&["GET"])),
        ("/api/clients", Method::Post) => "add_client",
        ("/api/clients", _) => return Err(ApiError::method_not_allowed(&["POST"])),
        ("/api/staff", Method::Get) => "staff_list",
        ("/api/staff", Method::Post) => "staff_add",
        ("/api/staff", _) => return Err(ApiError::method_not_allowed(&["GET", "POST"])),
        (p, Method::Post) if p.starts_with("/api/staff/") && p.ends_with("/reset-password") => {
            "staff_reset"
        }
        (p, Method::Post) if p.starts_with("/api/staff/") && p.ends_with("/unlock") => {
            "staff_unlock"
        }
        (p, _)
            if p.starts_with("/api/staff/")
                && (p.ends_with("/reset-password") || p.ends_with("/unlock")) =>
        {
            return Err(ApiError::method_not_allowed(&["POST"]));
        }
        (p, Method::Patch) if p.starts_with("/api/staff/") => "staff_change",
        (p, _) if p.starts_with("/api/staff/") => {
            return Err(ApiError::method_not_allowed(&["PATCH"]));
        }
        (p, Method::Post) if p.ends_with("/assignments") => "assign",
        (p, _) if p.ends_with("/assignments") => {
            return Err(ApiError::method_not_allowed(&["POST"]));
        }
        (p, Method::Delete) if p.contains("/assignments/") => "unassign",
        (p, _) if p.contains("/assignments/") => {
            return Err(ApiError::method_not_allowed(&["DELETE"]));
        }
        _ => return Err(ApiError::not_found()),
    };
    let request = staff_request(req)?;
    let ctx = request.ctx();
    let (me, role) = (request.me, request.role);
    Ok(match route {
        "caseload" => {
            let query = caseload::Query::parse(req.query())?;
            json(200, &caseload::list(&ctx, me, role, &query, ctx.today())?)
        }
        "add_client" => {
            let body: caseload::NewClient = request.api.json()?;
            let id = caseload::add_client(&ctx, me, &body, ctx.today())?;
            let client =
                client_info::load(ctx.db, id, ctx.today())?.ok_or_else(ApiError::internal)?;
            json(201, &json!({ "client": client }))
        }
        "staff_list" => json(200, &json!({ "staff": staff::list(&ctx, role)? })),
        "staff_add" => {
            let body: staff::NewStaff = request.api.json()?;
            // Read before adding: a misconfigured provider refuses before anything changes.
            let mail = request.api.env.mail()?;
            let added = staff::add(&ctx, me, role, &body)?;
            json(201, &handed(&ctx, mail.as_ref(), me, added)?)
        }
        "staff_reset" => {
            let id = staff_id(&path, "/reset-password")?;
            let mail = request.api.env.mail()?;
            let reset = staff::reset_password(&ctx, me, role, id)?;
            json(200, &handed(&ctx, mail.as_ref(), me, reset)?)
        }
        "staff_unlock" => json(
            200,
            &json!({ "staff": staff::unlock(&ctx, me, role, staff_id(&path, "/unlock")?)? }),
        ),
        "staff_change" => {
            let id = staff_id(&path, "")?;
            let body: staff::StaffChange = request.api.json()?;
            json(
                200,
                &json!({ "staff": staff::set_status(&ctx, me, role, id, &body)? }),
            )
        }
        "unassign" => {
            staff::unassign(&ctx, me, role, client_id(req)?, path_id(req, "staff")?)?;
            caseport_edge::builder(204)
                .header("cache-control", "no-store")
                .build()
        }
        _ => {
            let client = client_id(req)?;
            let body: staff::Assignment = request.api.json()?;
            json(
                200,
                &json!({ "assignment": staff::assign(&ctx, me, role, client, &body)? }),
            )
        }
    })
}

/// The staff id in `/api/staff/:id{suffix}`.
fn staff_id(path: &str, suffix: &str) -> Result<i64, ApiError> {
    path.strip_prefix("/api/staff/")
        .and_then(|rest| rest.strip_suffix(suffix))
        .and_then(|id| id.parse::<i64>().ok())
        .ok_or_else(ApiError::not_found)
}

/// Emails a staff member's temporary password (or, when that fails, hands it over once) and
/// says which.
fn handed(
    ctx: &caseport_shared::ctx::Ctx<'_>,
    mail: Option<&caseport_shared::mail::MailSettings>,
    me: caseport_shared::domain::Account,
    added: staff::Added,
) -> Result<serde_json::Value, ApiError> {
    let (member, handed, expires_at) =
        staff::email_temporary_password(ctx, mail, &WasiTransport, me, added)?;
    Ok(match handed {
        staff::Handed::Emailed { sent_to } => json!({
            "staff": member,
            "delivery": "email",
            "sent_to": sent_to,
            "expires_at": expires_at,
        }),
        staff::Handed::Shown {
            temporary_password,
            reason,
        } => json!({
            "staff": member,
            "delivery": "display",
            "temporary_password": temporary_password.expose(),
            "expires_at": expires_at,
            "mail_error": reason,
        }),
    })
}
