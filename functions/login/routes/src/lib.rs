//! What the `login` component answers: sign-in for staff and portal clients, the forced
//! change of a temporary password, sign-out, forgotten passwords and the first
//! administrator's setup. Routes, parses and responds; the rules are in
//! `caseport_shared::auth`. The component itself (`functions/login`) only exports [`handle`].

use caseport_edge::outbound::WasiTransport;
use caseport_edge::{ApiRequest, Env, Request, api_request, deployment_request, json, json_with};
use caseport_shared::api_error::{ApiError, Code};
use caseport_shared::auth::{self, SignIn};
use caseport_shared::{mail, status};
use serde_json::json;
use spin_sdk::http::{IncomingRequest, Method, Response, ResponseOutparam};

/// Work that waits until the answer is out: forgot-password links to email, with the
/// storage the request already opened.
struct After {
    env: Env,
    links: Vec<auth::ResetLink>,
}

/// Forgot password answers first, the same for a known and an unknown address and as quick;
/// the links are emailed after.
pub async fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
    caseport_edge::serve_then(incoming, out, answer, |after| email_links(&after)).await;
}

/// Emails forgot-password links; a failure is recorded on its delivery and logged.
fn email_links(after: &After) {
    let sent = after.env.mail().and_then(|mail| {
        let Some(mail) = mail else {
            return Err(ApiError::new(Code::MailNotConfigured, mail::NOT_CONFIGURED));
        };
        for link in &after.links {
            auth::send_reset_link(&after.env.ctx(), &mail, &WasiTransport, link)?;
        }
        Ok(())
    });
    if let Err(e) = sent {
        eprintln!(
            "forgot password: the reset link could not be sent: {}",
            e.message
        );
    }
}

fn answer(req: &Request) -> Result<(Response, Option<After>), ApiError> {
    let path = req.path().trim_end_matches('/');
    let is_post = matches!(req.method(), Method::Post);
    let known = [
        "/api/auth/login",
        "/api/auth/change-password",
        "/api/auth/logout",
        "/api/auth/forgot",
        "/api/auth/reset",
        "/api/auth/reset-link",
        "/api/auth/password-check",
        "/api/setup",
    ];
    match path {
        "/api/auth/me" | "/api/auth/password-rules" | "/api/status"
            if matches!(req.method(), Method::Get) => {}
        "/api/auth/me" | "/api/auth/password-rules" | "/api/status" => {
            return Err(ApiError::method_not_allowed(&["GET"]));
        }
        p if known.contains(&p) && !is_post => return Err(ApiError::method_not_allowed(&["POST"])),
        p if known.contains(&p) => {}
        _ => return Err(ApiError::not_found()),
    }
    if path == "/api/status" {
        // About the deployment, not a clinic: answered on any host name it is reached by.
        let deployment = deployment_request(req)?;
        return Ok((
            json(200, &status::status(&deployment.settings, &deployment.mail)),
            None,
        ));
    }
    let api = api_request(req)?;
    if path == "/api/auth/forgot" {
        let body: auth::ForgotRequest = api.json()?;
        let mail_configured = api.env.mail()?.is_some();
        let links = auth::forgot(&api.ctx(), mail_configured, &body, &api.client_network())?;
        let response = json(
            202,
            &json!({
                "status": "accepted",
                "message": "If this address belongs to an account, a link to choose a new password is on its way. It works for 30 minutes.",
            }),
        );
        let ApiRequest { env, .. } = api;
        return Ok((response, Some(After { env, links })));
    }
    Ok((route(path, &api)?, None))
}

/// Every route but forgot password, which answers first and emails after.
fn route(path: &str, api: &ApiRequest<'_>) -> Result<Response, ApiError> {
    let env = &api.env;
    let ctx = api.ctx();
    let max_age = env.settings.session_absolute_hours * 3600;
    let session = api.session();
    let signed_in = |user: auth::UserView, token: caseport_shared::domain::Token| {
        json_with(
            200,
            &json!({ "status": "ok", "user": user }),
            &[(
                "set-cookie",
                caseport_edge::session_cookie(token.expose(), max_age),
            )],
        )
    };

    Ok(match path {
        "/api/auth/login" => {
            let body: auth::LoginRequest = api.json()?;
            match auth::login(&ctx, &body, &api.client_network())? {
                SignIn::Session { user, token } => signed_in(user, token),
                SignIn::ChangeRequired {
                    change_token,
                    expires_at,
                } => json(
                    200,
                    &json!({
                        "status": "password_change_required",
                        "change_token": change_token.expose(),
                        "expires_at": expires_at,
                        "min_length": env.settings.password_min_length,
                    }),
                ),
            }
        }
        "/api/auth/change-password" => {
            let body: auth::ChangeRequest = api.json()?;
            let (user, token) =
                auth::change_password(&ctx, &body, session.as_deref(), &api.client_network())?;
            signed_in(user, token)
        }
        "/api/auth/logout" => {
            auth::logout(&ctx, session.as_deref())?;
            caseport_edge::builder(204)
                .header("cache-control", "no-store")
                .header("set-cookie", caseport_edge::cleared_cookie())
                .build()
        }
        "/api/auth/me" => {
            let user = auth::me(&ctx, session.as_deref())?;
            match auth::profile(&ctx, session.as_deref())? {
                Some(profile) => json(200, &json!({ "user": user, "profile": profile })),
                None => json(200, &json!({ "user": user })),
            }
        }
        "/api/auth/password-rules" => json(
            200,
            &json!({ "min_length": env.settings.password_min_length, "max_length": caseport_shared::policy::MAX_LENGTH }),
        ),
        "/api/auth/reset-link" => {
            let body: auth::ResetLinkRequest = api.json()?;
            auth::check_reset_link(&ctx, &body)?;
            json(200, &json!({ "status": "valid" }))
        }
        "/api/auth/password-check" => {
            let body: auth::PasswordCheckRequest = api.json()?;
            match auth::check_password(&ctx, &body, session.as_deref())? {
                None => json(200, &json!({ "ok": true })),
                Some(message) => json(200, &json!({ "ok": false, "message": message })),
            }
        }
        "/api/auth/reset" => {
            let body: auth::ResetRequest = api.json()?;
            let (user, token) = auth::reset(&ctx, &body)?;
            signed_in(user, token)
        }
        "/api/setup" => {
            let body: auth::SetupRequest = api.json()?;
            let user = auth::setup(&ctx, &body, &api.client_network())?;
            json(201, &json!({ "user": user }))
        }
        _ => return Err(ApiError::not_found()),
    })
}
