//! Outbound HTTP: `allowed_outbound_hosts` enforced on every request a guest sends, and
//! service chaining to `http://<component>.spin.internal`, which never leaves the process.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Result;
use http_body_util::BodyExt;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::runtime::App;

const CHAIN_SUFFIX: &str = ".spin.internal";

/// One entry of `allowed_outbound_hosts`, such as `https://api.postmarkapp.com`,
/// `http://*.spin.internal`, `tcp://127.0.0.1:5432` or `*://127.0.0.0/24:1000..2000`, in
/// Spin's grammar: a scheme (`*` or letters), a host (`*`, `*.domain`, a name, an IP address
/// or an IP network, or `self`) and a port (a number, `*`, or `start..end` with the end
/// excluded; left out, the scheme's well-known port).
#[derive(Debug, Clone, PartialEq)]
struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    ports: Ports,
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Any,
    Exact(String),
    Subdomain(String),
    Network(IpAddr, u8),
    /// The application itself (`self`, `self.alt`): requests without a host.
    ToSelf,
}

#[derive(Debug, Clone, PartialEq)]
enum Ports {
    Any,
    /// `start..end`, the end excluded (a single port is `p..p+1`).
    Range(u16, u32),
}

/// A component's parsed `allowed_outbound_hosts`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

/// The port a scheme means when none is written, as Spin's table has it.
fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        _ => None,
    }
}

/// An IP network written `a.b.c.d/len` (the address truncated to the prefix, as Spin does),
/// or an IP address (a network of one).
fn parse_network(text: &str) -> Option<(IpAddr, u8)> {
    let unbracketed = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let (addr, len) = match unbracketed.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (unbracketed, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max)?,
        None => max,
    };
    Some((truncate(addr, len), len))
}

/// `addr` with the bits past the first `len` cleared.
fn truncate(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

impl AllowedHost {
    fn parse(entry: &str) -> Result<Self> {
        let invalid = |why: &str| {
            anyhow::anyhow!(
                "\"{entry}\" is not an allowed outbound host: {why}; write it as <scheme>://<host>[:<port>], as in https://api.example.com or tcp://127.0.0.1:5432"
            )
        };
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| invalid("it has no scheme"))?;
        let scheme = match scheme {
            "*" => None,
            s if s.starts_with('{') => return Err(invalid("scheme lists are not supported")),
            s if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic()) => {
                Some(s.to_ascii_lowercase())
            }
            _ => return Err(invalid("the scheme must be * or letters")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        // The port follows the last `:` outside brackets.
        let split = match rest.rfind(']') {
            Some(close) => rest[close..].rfind(':').map(|i| close + i),
            None => rest.rfind(':'),
        };
        let (host, port) = match split {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        // A network's `/len` is part of the host; any other `/` starts a path.
        if host.contains('/') && parse_network(host).is_none() {
            return Err(invalid("it must not include a path"));
        }
        let host = match host {
            "" => return Err(invalid("it has no host")),
            "*" => HostPattern::Any,
            "self" | "self.alt" => HostPattern::ToSelf,
            h if h.starts_with('{') => return Err(invalid("host lists are not yet supported")),
            h => match (h.strip_prefix("*."), parse_network(h)) {
                (Some(suffix), _) if !suffix.contains('*') => {
                    HostPattern::Subdomain(suffix.to_ascii_lowercase())
                }
                (_, Some((ip, len))) => HostPattern::Network(ip, len),
                _ if h.contains('*') => {
                    return Err(invalid(
                        "wildcards are allowed only as subdomains, as in *.example.com",
                    ));
                }
                _ => HostPattern::Exact(h.to_ascii_lowercase()),
            },
        };
        let ports = match port {
            Some("*") => Ports::Any,
            Some(p) if p.starts_with('{') => {
                return Err(invalid("port lists are not yet supported"));
            }
            Some(p) => match p.split_once("..") {
                Some((a, b)) => match (a.parse::<u16>(), b.parse::<u32>()) {
                    (Ok(a), Ok(b)) if u32::from(a) < b && b <= 65536 => Ports::Range(a, b),
                    _ => return Err(invalid(&format!("port range \"{p}\" is not start..end"))),
                },
                None => match p.parse::<u16>() {
                    Ok(p) => Ports::Range(p, u32::from(p) + 1),
                    Err(_) => return Err(invalid(&format!("port \"{p}\" is not a number"))),
                },
            },
            None => match scheme.as_deref().and_then(well_known_port) {
                Some(p) => Ports::Range(p, u32::from(p) + 1),
                None => {
                    return Err(invalid(&format!(
                        "no port was given and the scheme \"{}\" has no well-known port",
                        scheme.as_deref().unwrap_or("*")
                    )));
                }
            },
        };
        Ok(Self {
            scheme,
            host,
            ports,
        })
    }

    fn port_allowed(&self, port: u16) -> bool {
        match self.ports {
            Ports::Any => true,
            Ports::Range(a, b) => port >= a && u32::from(port) < b,
        }
    }

    fn scheme_allowed(&self, scheme: &str) -> bool {
        self.scheme.as_deref().is_none_or(|s| s == scheme)
    }
}

impl AllowedHosts {
    /// Parses the manifest entries (templates already expanded).
    pub fn parse(entries: &[String]) -> Result<Self> {
        let entries = entries
            .iter()
            .map(|e| AllowedHost::parse(e))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { entries })
    }

    /// Whether a request to `scheme://host:port` may be sent.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        let Some(port) = port.or_else(|| well_known_port(scheme)) else {
            return false;
        };
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        self.entries.iter().any(|e| {
            e.scheme_allowed(scheme)
                && e.port_allowed(port)
                && match &e.host {
                    HostPattern::Any => true,
                    HostPattern::Exact(h) => *h == host,
                    HostPattern::Subdomain(s) => host
                        .strip_suffix(s.as_str())
                        .is_some_and(|p| p.ends_with('.')),
                    HostPattern::Network(net, len) => ip.is_some_and(|ip| {
                        truncate(ip, *len) == *net && ip.is_ipv4() == net.is_ipv4()
                    }),
                    HostPattern::ToSelf => false,
                }
        })
    }

    /// Whether a request without a host (a relative URL, or to `self.alt`) may go to the
    /// application itself: an entry naming `self`, or any host, with an HTTP scheme.
    pub fn allows_self(&self) -> bool {
        self.entries.iter().any(|e| {
            matches!(e.host, HostPattern::ToSelf | HostPattern::Any)
                && (e.scheme_allowed("http") || e.scheme_allowed("https"))
        })
    }

    /// Whether a socket may connect (or send) to `addr` with `scheme` (`tcp`, `udp`): only
    /// addresses and networks match, never a name, as in Spin.
    pub fn allows_socket(&self, scheme: &str, addr: SocketAddr) -> bool {
        self.entries.iter().any(|e| {
            e.scheme_allowed(scheme)
                && e.port_allowed(addr.port())
                && match &e.host {
                    HostPattern::Any => true,
                    HostPattern::Network(net, len) => {
                        truncate(addr.ip(), *len) == *net && addr.ip().is_ipv4() == net.is_ipv4()
                    }
                    _ => false,
                }
        })
    }

    /// The check wasi:sockets runs for each address a component uses, as Spin's: connects
    /// and UDP sends to what `allowed_outbound_hosts` names; the implicit bind a connect
    /// makes; never listening or an explicit bind.
    pub fn socket_check(
        self: Arc<Self>,
        component: String,
    ) -> impl Fn(SocketAddr, SocketAddrUse) -> Pin<Box<dyn Future<Output = bool> + Send + Sync>>
    + Send
    + Sync
    + 'static {
        move |addr, used| {
            let allowed = match used {
                SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => false,
                SocketAddrUse::TcpConnect => self.allows_socket("tcp", addr),
                SocketAddrUse::UdpBind | SocketAddrUse::UdpSend => self.allows_socket("udp", addr),
                SocketAddrUse::UdpReceive => true,
            };
            let scheme = match used {
                SocketAddrUse::TcpConnect => Some("tcp"),
                SocketAddrUse::UdpSend => Some("udp"),
                _ => None,
            };
            if !allowed && let Some(scheme) = scheme {
                eprintln!(
                    "component {component} may not connect to {scheme}://{addr}: add it to allowed_outbound_hosts"
                );
            }
            Box::pin(std::future::ready(allowed))
        }
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
            let mut request = request;
            let uri = request.uri();
            let scheme = uri.scheme_str().unwrap_or("https").to_string();
            let host = uri.host().unwrap_or_default().to_ascii_lowercase();
            let grants = app.grants(component);
            // A request without a host (a relative URL) or to `self.alt` goes to the
            // application itself, over the network to its own listener, as in Spin.
            if host.is_empty() || host == "self.alt" {
                if !grants.allowed_outbound_hosts.allows_self() {
                    eprintln!(
                        "component {} made a request to its own app without permission: add \"http://self\" to allowed_outbound_hosts",
                        grants.component
                    );
                    return Err(Error::HttpRequestDenied);
                }
                let Some(local) = app.local_addr() else {
                    return Err(Error::HttpRequestUriInvalid);
                };
                let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
                *request.uri_mut() = format!("http://{local}{path}")
                    .parse()
                    .map_err(|_| Error::HttpRequestUriInvalid)?;
                if let Ok(v) = http::HeaderValue::from_str(&local.to_string()) {
                    request.headers_mut().insert(http::header::HOST, v);
                }
                let (response, io) =
                    wasmtime_wasi_http::default_send_request(request, options).await?;
                let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(io);
                return Ok((response.map(BodyExt::boxed_unsync), io));
            }
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
                // Only a component some route names can be reached, as in Spin.
                let Some(index) = app.chain_target(target) else {
                    eprintln!(
                        "component {}: unknown routing destination '{target}' (no [[trigger.http]] names it)",
                        grants.component
                    );
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
            "https://x/path",
            "*://x",
            "tcp://127.0.0.1",
            "https://a*b",
            "https://x:port",
            "tcp://x:1000-2000",
            "{http,https}://x",
            "https://{a,b}",
            "https://x:{80,443}",
            "ht+tp://x",
        ] {
            assert!(AllowedHosts::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn schemes_have_their_well_known_ports() {
        let h = hosts(&["postgres://db.internal", "redis://10.0.0.5"]);
        assert!(h.allows("postgres", "db.internal", Some(5432)));
        assert!(h.allows("redis", "10.0.0.5", None));
        assert!(!h.allows("redis", "10.0.0.5", Some(6380)));
    }

    #[test]
    fn sockets_match_addresses_networks_and_port_ranges_never_names() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let h = hosts(&[
            "tcp://127.0.0.1:5432",
            "*://10.1.2.3/24:1000..2000",
            "udp://[::1]:53",
            "tcp://localhost:6379",
        ]);
        assert!(h.allows_socket("tcp", addr("127.0.0.1:5432")));
        assert!(!h.allows_socket("tcp", addr("127.0.0.2:5432")));
        assert!(!h.allows_socket("udp", addr("127.0.0.1:5432")));
        assert!(h.allows_socket("tcp", addr("10.1.2.200:1000")));
        assert!(h.allows_socket("udp", addr("10.1.2.7:1999")));
        assert!(
            !h.allows_socket("tcp", addr("10.1.2.7:2000")),
            "the end is excluded"
        );
        assert!(!h.allows_socket("tcp", addr("10.1.3.7:1500")));
        assert!(h.allows_socket("udp", addr("[::1]:53")));
        assert!(
            !h.allows_socket("tcp", addr("127.0.0.1:6379")),
            "a name never matches a socket"
        );
        assert!(hosts(&["*://*:*"]).allows_socket("tcp", addr("192.0.2.1:1")));
    }

    #[test]
    fn the_socket_check_allows_only_what_spin_allows() {
        let check = Arc::new(hosts(&["tcp://127.0.0.1:7"])).socket_check("test".into());
        let run = |addr: &str, used| {
            let fut = check(addr.parse().unwrap(), used);
            futures_ready(fut)
        };
        assert!(run("127.0.0.1:7", SocketAddrUse::TcpConnect));
        assert!(!run("127.0.0.1:8", SocketAddrUse::TcpConnect));
        assert!(
            run("0.0.0.0:0", SocketAddrUse::TcpBind),
            "the implicit bind of a connect"
        );
        assert!(!run("127.0.0.1:7", SocketAddrUse::TcpBind));
        assert!(!run("0.0.0.0:0", SocketAddrUse::TcpListen));
    }

    /// The value of a future that is ready at once.
    fn futures_ready(mut fut: Pin<Box<dyn Future<Output = bool> + Send + Sync>>) -> bool {
        let waker = std::task::Waker::noop();
        match fut
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
        {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => false,
        }
    }

    #[test]
    fn self_is_the_application_itself() {
        assert!(hosts(&["http://self"]).allows_self());
        assert!(hosts(&["*://*:*"]).allows_self());
        assert!(!hosts(&["https://api.example.com"]).allows_self());
        assert!(!hosts(&["http://self"]).allows("http", "self", None));
    }
}
