//! Outbound HTTP: `allowed_outbound_hosts` enforced on every request a guest sends, and
//! service chaining to `http://<component>.spin.internal`, which never leaves the process.

use std::future::Future;
use std::sync::Arc;

use anyhow::{Result, bail};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::runtime::App;

const CHAIN_SUFFIX: &str = ".spin.internal";

/// One entry of `allowed_outbound_hosts`, such as `https://api.postmarkapp.com` or
/// `http://*.spin.internal`.
#[derive(Debug, Clone, PartialEq)]
struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Any,
    Exact(String),
    Subdomain(String),
}

/// A component's parsed `allowed_outbound_hosts`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl AllowedHosts {
    /// Parses the manifest entries (templates already expanded).
    pub fn parse(entries: &[String]) -> Result<Self> {
        let mut out = Vec::new();
        for entry in entries {
            let Some((scheme, rest)) = entry.split_once("://") else {
                bail!("\"{entry}\" has no scheme; write it as https://host or http://host:port");
            };
            let scheme = match scheme {
                "*" => None,
                "http" | "https" => Some(scheme.to_string()),
                other => {
                    bail!("\"{entry}\": scheme \"{other}\" is not supported; use http, https or *")
                }
            };
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            if rest.contains('/') {
                bail!("\"{entry}\" has a path; allowed hosts name a scheme, host and port only");
            }
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, "*")) => (h, None),
                Some((h, p)) => match p.parse::<u16>() {
                    Ok(p) => (h, Some(p)),
                    Err(_) => bail!("\"{entry}\": port \"{p}\" is not a number or *"),
                },
                None => match scheme.as_deref().and_then(default_port) {
                    Some(p) => (rest, Some(p)),
                    None => bail!("\"{entry}\": with scheme * a port (or :*) is required"),
                },
            };
            let host = match host {
                "" => bail!("\"{entry}\" has no host"),
                "*" => HostPattern::Any,
                "self" => bail!(
                    "\"{entry}\": `self` requests are not supported by this runtime; use http://<component>.spin.internal"
                ),
                h => match h.strip_prefix("*.") {
                    Some(suffix) => HostPattern::Subdomain(suffix.to_ascii_lowercase()),
                    None if h.contains('*') => {
                        bail!("\"{entry}\": a wildcard host must be * or *.domain")
                    }
                    None => HostPattern::Exact(h.to_ascii_lowercase()),
                },
            };
            out.push(AllowedHost { scheme, host, port });
        }
        Ok(Self { entries: out })
    }

    /// Whether a request to `scheme://host:port` may be sent.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        let Some(port) = port.or_else(|| default_port(scheme)) else {
            return false;
        };
        self.entries.iter().any(|e| {
            e.scheme.as_deref().is_none_or(|s| s == scheme)
                && e.port.is_none_or(|p| p == port)
                && match &e.host {
                    HostPattern::Any => true,
                    HostPattern::Exact(h) => *h == host,
                    HostPattern::Subdomain(s) => host
                        .strip_suffix(s.as_str())
                        .is_some_and(|p| p.ends_with('.')),
                }
        })
    }
}

type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

/// The `wasi:http` hooks of one request: checks the grant, then chains or sends.
pub struct OutboundHooks {
    pub app: Arc<App>,
    pub component: usize,
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let app = self.app.clone();
        let component = self.component;
        Box::new(async move {
            let uri = request.uri();
            let scheme = uri.scheme_str().unwrap_or("https").to_string();
            let host = uri.host().unwrap_or_default().to_ascii_lowercase();
            let grants = app.grants(component);
            if !grants
                .allowed_outbound_hosts
                .allows(&scheme, &host, uri.port_u16())
            {
                eprintln!(
                    "component {} may not send to {scheme}://{host}: add it to allowed_outbound_hosts",
                    grants.component
                );
                return Err(Error::HttpRequestDenied);
            }
            if let Some(target) = host.strip_suffix(CHAIN_SUFFIX) {
                let Some(index) = app.component_index(target) else {
                    return Err(Error::DestinationNotFound);
                };
                let (parts, body) = request.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_err(|_| Error::HttpRequestBodySize(None))?
                    .to_bytes();
                let response = app
                    .chain(index, http::Request::from_parts(parts, body))
                    .await;
                let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                    Box::new(async { Ok(()) });
                return Ok((response, done));
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(io);
            Ok((response.map(BodyExt::boxed_unsync), io))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn default_ports_follow_the_scheme() {
        let h = hosts(&["https://api.postmarkapp.com"]);
        assert!(h.allows("https", "api.postmarkapp.com", None));
        assert!(h.allows("https", "API.postmarkapp.com", Some(443)));
        assert!(!h.allows("http", "api.postmarkapp.com", None));
        assert!(!h.allows("https", "api.postmarkapp.com", Some(8443)));
        assert!(!h.allows("https", "evil.com", None));
    }

    #[test]
    fn wildcards_match_what_they_say() {
        let h = hosts(&["http://*.spin.internal", "http://127.0.0.1:*"]);
        assert!(h.allows("http", "web.spin.internal", None));
        assert!(!h.allows("http", "spin.internal", None));
        assert!(!h.allows("http", "webspin.internal", None));
        assert!(h.allows("http", "127.0.0.1", Some(4242)));
        assert!(!h.allows("https", "127.0.0.1", Some(4242)));
    }

    #[test]
    fn an_empty_list_allows_nothing() {
        assert!(!hosts(&[]).allows("https", "example.com", None));
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "example.com",
            "ftp://x",
            "https://x/path",
            "*://x",
            "https://a*b",
            "https://x:port",
        ] {
            assert!(AllowedHosts::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
