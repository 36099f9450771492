//! What the `operator` component answers: the operator's work above the clinics — the
//! clinics, their host names and settings, suspending, exporting and deleting one, and the
//! usage each is billed for. Only on the operators' host name, only for its administrators
//! (404 otherwise). Routes, parses and responds; the rules are in `caseport_shared::operator`.
//! The component itself (`functions/operator`) only exports [`handle`].

use caseport_edge::{Request, json, json_with, operator_request};
use caseport_shared::api_error::ApiError;
use caseport_shared::operator::{self, UsageQuery};
use serde_json::json;
use spin_sdk::http::{IncomingRequest, Method, Response, ResponseOutparam};

/// What the usage events name as their `source`: the same for every page and host name, so
/// that `source` + `id` identify an event for good.
const USAGE_SOURCE: &str = "/caseport/usage";

/// The clinic id in `/api/operator/clinics/:id{suffix}`.
fn clinic_id(path: &str, suffix: &str) -> Result<i64, ApiError> {
    path.strip_prefix("/api/operator/clinics/")
        .and_then(|rest| rest.strip_suffix(suffix))
        .and_then(|id| id.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(ApiError::not_found)
}

/// Answers one request.
pub async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    caseport_edge::serve(incoming, out, answer).await;
}

fn answer(req: &Request) -> Result<Response, ApiError> {
    let path = req.path().trim_end_matches('/').to_string();
    let method = req.method().clone();
    let route = match (path.as_str(), &method) {
        ("/api/operator/clinics", Method::Get) => "list",
        ("/api/operator/clinics", Method::Post) => "create",
        ("/api/operator/clinics", _) => {
            return Err(ApiError::method_not_allowed(&["GET", "POST"]));
        }
        ("/api/operator/usage", Method::Get) => "usage",
        ("/api/operator/usage/summary", Method::Get) => "summary",
        ("/api/operator/usage" | "/api/operator/usage/summary", _) => {
            return Err(ApiError::method_not_allowed(&["GET"]));
        }
        (p, Method::Get) if p.ends_with("/export") => "export",
        (p, _) if p.ends_with("/export") => return Err(ApiError::method_not_allowed(&["GET"])),
        (p, Method::Patch) if p.starts_with("/api/operator/clinics/") => "change",
        (p, Method::Delete) if p.starts_with("/api/operator/clinics/") => "delete",
        (p, _) if p.starts_with("/api/operator/clinics/") => {
            return Err(ApiError::method_not_allowed(&["PATCH", "DELETE"]));
        }
        _ => return Err(ApiError::not_found()),
    };
    let request = operator_request(req)?;
    let env = &request.api.env;
    let deployment = env.deployment_ctx();
    let me = request.me;
    Ok(match route {
        "list" => json(200, &json!({ "clinics": operator::list(deployment.db)? })),
        "create" => {
            let body: operator::NewClinic = request.api.json()?;
            let created = operator::create(&deployment, me, &body)?;
            json(
                201,
                &json!({
                    "clinic": created.clinic,
                    "admin_username": created.admin_username,
                    "temporary_password": created.temporary_password.expose(),
                    "expires_at": created.expires_at,
                }),
            )
        }
        "change" => {
            let body: operator::Change = request.api.json()?;
            let clinic = operator::change(&deployment, me, clinic_id(&path, "")?, &body)?;
            json(200, &json!({ "clinic": clinic }))
        }
        "delete" => {
            let body = operator::Deletion::parse(req.query())?;
            let id = clinic_id(&path, "")?;
            json(
                200,
                &operator::delete(&deployment, deployment.kv, me, id, &body)?,
            )
        }
        "export" => {
            let id = clinic_id(&path, "/export")?;
            let archive = operator::export(&deployment, me, id)?;
            let day = deployment.clock.now().to_string();
            let filename = format!("caseport-clinic-{id}-{}.json", &day[..10.min(day.len())]);
            json_with(
                200,
                &archive,
                &[(
                    "content-disposition",
                    format!("attachment; filename=\"{filename}\""),
                )],
            )
        }
        "usage" => {
            let query = UsageQuery::parse(req.query(), request.ctx().today())?;
            let (events, next) =
                operator::usage_events(deployment.db, USAGE_SOURCE, query.after, query.limit)?;
            let mut headers = vec![(
                "content-type",
                "application/cloudevents-batch+json; charset=utf-8".to_string(),
            )];
            if let Some(next) = next {
                headers.push((
                    "link",
                    format!(
                        "</api/operator/usage?after={next}&limit={}>; rel=\"next\"",
                        query.limit
                    ),
                ));
            }
            json_with(200, &events, &headers)
        }
        _ => {
            let query = UsageQuery::parse(req.query(), request.ctx().today())?;
            json(
                200,
                &json!({
                    "since": query.since,
                    "days": operator::usage_summary(deployment.db, &query.since)?,
                }),
            )
        }
    })
}
