//! What the `reset-and-send` component answers: Reset and Send New (emailed or shown once),
//! the administrator's set password, and the mail providers' delivery webhooks. Routes,
//! parses and responds; the rules are in `caseport_shared::reset` and
//! `caseport_shared::mail`. The component itself (`functions/reset-and-send`) only exports
//! [`handle`].

use caseport_edge::outbound::WasiTransport;
use caseport_edge::{Request, api_request, client_id, json, staff_request};
use caseport_shared::api_error::{ApiError, Code};
use caseport_shared::mail::{self, Provider};
use caseport_shared::ports::Clock;
use caseport_shared::reset;
use serde_json::json;
use spin_sdk::http::{IncomingRequest, Method, Response, ResponseOutparam};

/// Answers one request.
pub async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    caseport_edge::serve(incoming, out, answer).await;
}

fn answer(req: &Request) -> Result<Response, ApiError> {
    let path = req.path().trim_end_matches('/');
    if let Some(provider) = path.strip_prefix("/api/mail/events/") {
        return webhook(req, provider);
    }
    let reset_route = path.ends_with("/portal-password/reset");
    let set_route = path.ends_with("/portal-password");
    match (reset_route, set_route, req.method()) {
        (true, _, Method::Post) | (false, true, Method::Put) => {}
        (true, _, _) => return Err(ApiError::method_not_allowed(&["POST"])),
        (false, true, _) => return Err(ApiError::method_not_allowed(&["PUT"])),
        _ => return Err(ApiError::not_found()),
    }
    let id = client_id(req)?;
    let staff = staff_request(req)?;
    let ctx = staff.ctx();
    let (me, role) = (staff.me, staff.role);
    if set_route {
        let body: reset::SetRequest = staff.api.json()?;
        return Ok(json(200, &reset::set_password(&ctx, me, role, id, &body)?));
    }
    let body: reset::ResetRequest = staff.api.json()?;
    let mail = staff.api.env.mail()?;
    Ok(
        match reset::reset(&ctx, mail.as_ref(), &WasiTransport, me, role, id, &body)? {
            reset::Outcome::Json { status, body } => json(status, &body),
            reset::Outcome::Shown {
                username,
                temporary_password,
                expires_at,
            } => json(
                200,
                &json!({
                    "status": "shown",
                    "username": username,
                    "temporary_password": temporary_password.expose(),
                    "expires_at": expires_at,
                }),
            ),
        },
    )
}

/// `POST /api/mail/events/:provider`: the configured provider's delivery events, when they
/// carry the webhook secret. Any other provider is not found.
fn webhook(req: &Request, provider: &str) -> Result<Response, ApiError> {
    if !matches!(req.method(), Method::Post) {
        return Err(ApiError::method_not_allowed(&["POST"]));
    }
    let api = api_request(req)?;
    let Some(mail) = api.env.mail()? else {
        return Err(ApiError::not_found());
    };
    if Provider::parse(provider) != Some(mail.provider) || mail.provider == Provider::DevMailbox {
        return Err(ApiError::not_found());
    }
    let header = |name: &str| req.header(name).map(str::to_string);
    let now = api.env.clock.now().as_second();
    if !mail::webhook_authentic(&mail, &header, req.body(), now) {
        eprintln!("mail webhook: refused a {provider} call without valid credentials");
        return Err(ApiError::new(
            Code::InvalidSignature,
            "The webhook's credentials or signature are not valid.",
        ));
    }
    let events = mail::parse_webhook(mail.provider, req.body()).map_err(|why| {
        ApiError::new(
            Code::BadWebhook,
            format!("This is not a {provider} delivery event: {why}."),
        )
    })?;
    let replay_key = mail::replay_key(mail.provider, &header, req.body());
    let applied = reset::apply_events(
        &api.env.deployment_ctx(),
        mail.provider,
        &replay_key,
        &events,
    )?;
    if applied.replayed {
        eprintln!("mail webhook: a {provider} call seen before was not applied again");
    }
    if applied.unknown > 0 {
        eprintln!(
            "mail webhook: {} {provider} event(s) for deliveries Caseport does not know",
            applied.unknown
        );
    }
    Ok(caseport_edge::builder(204)
        .header("cache-control", "no-store")
        .build())
}
