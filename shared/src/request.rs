//! What every API request must pass before the rules see it: the Origin check (CSRF), the
//! body limit, the content type, and JSON parsing with a field-precise error. One place,
//! used by every component through `functions/edge`.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv6Net};
use serde::de::DeserializeOwned;

use crate::api_error::{ApiError, Code};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 64 * 1024;

/// The parts of a request these checks read.
pub struct Incoming<'a> {
    pub method: &'a str,
    /// `spin-full-url`: the scheme and host the request was sent to.
    pub full_url: &'a str,
    pub content_type: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub sec_fetch_site: Option<&'a str>,
    pub body: &'a [u8],
}

fn origin_of(url: &str) -> Option<&str> {
    let after_scheme = url.find("://")? + 3;
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    Some(&url[..end])
}

impl Incoming<'_> {
    /// Whether the request changes state (and so must come from our own pages).
    pub fn is_state_changing(&self) -> bool {
        !matches!(self.method, "GET" | "HEAD" | "OPTIONS")
    }

    /// Refuses a state-changing request sent from another site's page.
    pub fn check_origin(&self) -> Result<(), ApiError> {
        if !self.is_state_changing() {
            return Ok(());
        }
        let refused = || {
            ApiError::new(
                Code::BadOrigin,
                "This request came from another website and was refused. Use Caseport's own pages.",
            )
        };
        if let Some(origin) = self.origin {
            let ours = origin_of(self.full_url);
            let forwarded_https = ours.map(|o| o.replacen("http://", "https://", 1));
            if Some(origin) != ours && Some(origin) != forwarded_https.as_deref() {
                return Err(refused());
            }
        } else if self
            .sec_fetch_site
            .is_some_and(|s| s != "same-origin" && s != "none")
        {
            return Err(refused());
        }
        Ok(())
    }

    /// Parses a JSON body into `T`: 413, 415, 400 `bad_json` or 422 naming the field.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.len() > MAX_BODY {
            return Err(ApiError::new(
                Code::BodyTooLarge,
                format!("The request body is larger than {} KiB.", MAX_BODY / 1024),
            ));
        }
        let is_json = self.content_type.is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
        if !is_json {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                "Send the request body as JSON, with Content-Type: application/json.",
            ));
        }
        let mut de = serde_json::Deserializer::from_slice(self.body);
        let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut de);
        let value = match parsed {
            Ok(v) => v,
            Err(e) => return Err(field_error(e)),
        };
        de.end().map_err(|_| bad_json())?;
        Ok(value)
    }
}

/// A query parameter that must be a whole number from `min` to `max`; anything else is a 422
/// naming it.
pub fn whole_number(field: &str, value: &str, min: i64, max: i64) -> Result<i64, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("{field} must be a whole number from {min} to {max}."),
            )
        })
}

/// The network a request comes from, for per-client limits: the peer's address, or behind a
/// trusted proxy the nearest address in `X-Forwarded-For` that is not itself a trusted proxy
/// (a client can prepend anything to that header, so only what trusted proxies appended
/// counts). An IPv6 address counts as its /64, which one subscriber usually holds whole.
pub fn client_network(peer: &str, forwarded_for: Option<&str>, trusted: &[IpNet]) -> String {
    let parse = |s: &str| -> Option<IpAddr> {
        let s = s.trim();
        s.parse::<IpAddr>()
            .ok()
            .or_else(|| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let Some(mut client) = parse(peer) else {
        return "unknown".to_string();
    };
    if is_trusted(&client)
        && let Some(header) = forwarded_for
    {
        for hop in header.rsplit(',') {
            match parse(hop) {
                Some(ip) if is_trusted(&ip) => client = ip,
                Some(ip) => {
                    client = ip;
                    break;
                }
                None => break,
            }
        }
    }
    match client {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => Ipv6Net::new(v6, 64)
                .map(|n| n.trunc().to_string())
                .unwrap_or_else(|_| v6.to_string()),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

fn bad_json() -> ApiError {
    ApiError::new(Code::BadJson, "The request body is not valid JSON.")
}

fn field_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = e.inner();
    if matches!(
        inner.classify(),
        serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io
    ) {
        return bad_json();
    }
    let text = inner.to_string();
    let quoted = |marker: &str| {
        text.split_once(marker)
            .and_then(|(_, rest)| rest.split('`').next())
            .map(str::to_string)
    };
    let path = e.path().to_string();
    if let Some(field) = quoted("missing field `") {
        let field = if path == "." {
            field
        } else {
            format!("{path}.{field}")
        };
        return ApiError::invalid(&field, format!("The field {field} is required."));
    }
    if let Some(field) = quoted("unknown field `") {
        return ApiError::invalid(
            &field,
            format!("The field {field} is not part of this request."),
        );
    }
    let field = if path == "." {
        "body".to_string()
    } else {
        path
    };
    let expected = text
        .split_once("expected ")
        .map(|(_, rest)| rest.split(" at line").next().unwrap_or(rest).to_string())
        .unwrap_or_else(|| "a different value".into());
    ApiError::invalid(
        &field,
        format!("The field {field} has the wrong type: expected {expected}."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Login {
        realm: String,
        username: String,
        password: String,
    }

    fn incoming<'a>(body: &'a [u8], ct: Option<&'a str>, origin: Option<&'a str>) -> Incoming<'a> {
        Incoming {
            method: "POST",
            full_url: "http://127.0.0.1:3000/api/auth/login",
            content_type: ct,
            origin,
            sec_fetch_site: None,
            body,
        }
    }

    fn err(body: &[u8]) -> ApiError {
        incoming(body, Some("application/json"), None)
            .json::<Login>()
            .unwrap_err()
    }

    #[test]
    fn a_complete_body_parses() {
        let ok = incoming(
            br#"{"realm":"staff","username":"a","password":"b"}"#,
            Some("application/json; charset=utf-8"),
            None,
        );
        assert_eq!(ok.json::<Login>().unwrap().username, "a");
    }

    #[test]
    fn malformed_json_is_400() {
        for body in [
            &b"{"[..],
            b"not json",
            b"",
            br#"{"realm":"staff","username":"a","password":"b"} x"#,
        ] {
            let e = err(body);
            assert_eq!(
                (e.status(), e.code.as_str()),
                (400, "bad_json"),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_missing_field_is_422_naming_it() {
        let e = err(br#"{"realm":"staff","username":"a"}"#);
        assert_eq!((e.status(), e.field.as_deref()), (422, Some("password")));
    }

    #[test]
    fn a_wrong_type_is_422_naming_the_field() {
        let e = err(br#"{"realm":"staff","username":5,"password":"b"}"#);
        assert_eq!((e.status(), e.field.as_deref()), (422, Some("username")));
        assert!(e.message.contains("expected a string"), "{}", e.message);
        let e = err(b"[1,2]");
        assert_eq!(e.status(), 422);
    }

    #[test]
    fn an_unknown_field_is_422() {
        let e = err(br#"{"realm":"staff","username":"a","password":"b","admin":true}"#);
        assert_eq!((e.status(), e.field.as_deref()), (422, Some("admin")));
    }

    #[test]
    fn the_wrong_content_type_is_415() {
        let e = incoming(b"{}", Some("text/plain"), None)
            .json::<Login>()
            .unwrap_err();
        assert_eq!(e.status(), 415);
        assert_eq!(
            incoming(b"{}", None, None)
                .json::<Login>()
                .unwrap_err()
                .status(),
            415
        );
    }

    #[test]
    fn a_large_body_is_413() {
        let body = vec![b' '; MAX_BODY + 1];
        assert_eq!(
            incoming(&body, Some("application/json"), None)
                .json::<Login>()
                .unwrap_err()
                .status(),
            413
        );
    }

    #[test]
    fn the_client_network_trusts_only_trusted_proxies() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // No proxy configured: the header is the client's own words, ignored.
        assert_eq!(
            client_network("203.0.113.9:5000", Some("198.51.100.1"), &[]),
            "203.0.113.9"
        );
        assert_eq!(
            client_network("203.0.113.9:5000", Some("198.51.100.1"), &proxies),
            "203.0.113.9",
            "a peer that is not a trusted proxy"
        );
        // Behind the proxy: the nearest address it did not add, whatever the client wrote.
        assert_eq!(
            client_network(
                "10.1.2.3:5000",
                Some("6.6.6.6, 198.51.100.1, 10.9.9.9"),
                &proxies
            ),
            "198.51.100.1"
        );
        assert_eq!(client_network("10.1.2.3:5000", None, &proxies), "10.1.2.3");
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a = client_network("[2001:db8:1:2::1]:5000", None, &[]);
        let b = client_network("[2001:db8:1:2:ffff::9]:5000", None, &[]);
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_ne!(a, client_network("[2001:db8:1:3::1]:5000", None, &[]));
        assert_eq!(
            client_network("[::ffff:192.0.2.1]:5000", None, &[]),
            "192.0.2.1"
        );
    }

    #[test]
    fn a_foreign_origin_is_refused() {
        assert!(
            incoming(b"", None, Some("http://127.0.0.1:3000"))
                .check_origin()
                .is_ok()
        );
        assert!(incoming(b"", None, None).check_origin().is_ok());
        let e = incoming(b"", None, Some("https://evil.example"))
            .check_origin()
            .unwrap_err();
        assert_eq!((e.status(), e.code.as_str()), (403, "bad_origin"));
        let mut cross = incoming(b"", None, None);
        cross.sec_fetch_site = Some("cross-site");
        assert!(cross.check_origin().is_err());
        let mut get = incoming(b"", None, Some("https://evil.example"));
        get.method = "GET";
        assert!(get.check_origin().is_ok());
    }
}
