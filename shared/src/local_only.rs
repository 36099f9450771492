//! Who may reach what belongs to a local run only (the local mailbox, which holds every
//! captured password): a program on this computer that addresses it by a loopback name, or
//! another component of the application (service chaining). Under `caseport up` the runtime
//! refuses foreign `Host` names too; this check holds under any Spin host.

use std::net::{IpAddr, SocketAddr};

/// Where a request came from, as the local-only rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A loopback peer that addressed `localhost`, a `*.localhost` name or a loopback IP.
    ThisComputer,
    /// Another component: Spin gives a service-chained request the unspecified client
    /// address (`0.0.0.0:0`), which no network peer can have.
    Component,
    /// Another machine, or a page whose own host name points at 127.0.0.1 (DNS rebinding).
    Elsewhere,
}

/// Classifies a request by `spin-client-addr` (`ip:port`) and the host it was addressed to
/// (the authority of `spin-full-url`, which Spin takes from the `Host` header; wasi:http does
/// not hand that header to the component).
pub fn caller(client_addr: Option<&str>, host: Option<&str>) -> Caller {
    let Some(ip) = client_addr
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .map(|a| a.ip())
    else {
        return Caller::Elsewhere;
    };
    if ip.is_unspecified() {
        return Caller::Component;
    }
    let name = host.map(host_name).unwrap_or_default();
    let local_name = name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|n| n.is_loopback());
    if ip.is_loopback() && local_name {
        Caller::ThisComputer
    } else {
        Caller::Elsewhere
    }
}

/// The authority of a URL such as `spin-full-url`.
pub fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// The name part of a `Host` header, lowercased: no port, no IPv6 brackets, no final dot.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_computer_by_a_loopback_name() {
        for (addr, host) in [
            ("127.0.0.1:50000", "127.0.0.1:3000"),
            ("127.0.0.1:50000", "localhost:3000"),
            ("127.0.0.1:50000", "clinic-a.localhost:3000"),
            ("[::1]:50000", "[::1]:3000"),
        ] {
            assert_eq!(
                caller(Some(addr), Some(host)),
                Caller::ThisComputer,
                "{addr} {host}"
            );
        }
    }

    #[test]
    fn rebinding_and_other_machines_are_elsewhere() {
        for (addr, host) in [
            // A page of evil.example whose name resolves to 127.0.0.1.
            ("127.0.0.1:50000", Some("evil.example:3000")),
            ("192.0.2.7:50000", Some("127.0.0.1:3000")),
            ("10.77.0.1:50000", Some("10.77.0.1:3000")),
            // Pretending to be a chained request from the network.
            ("192.0.2.7:50000", Some("dev-mailbox.spin.internal")),
            ("127.0.0.1:50000", None),
            ("unknown", Some("localhost")),
        ] {
            assert_eq!(
                caller(Some(addr), host),
                Caller::Elsewhere,
                "{addr} {host:?}"
            );
        }
        assert_eq!(caller(None, Some("localhost")), Caller::Elsewhere);
    }

    #[test]
    fn the_host_is_read_from_the_full_url() {
        assert_eq!(
            authority("http://127.0.0.1:3000/dev/mailbox"),
            Some("127.0.0.1:3000")
        );
        assert_eq!(authority("http://[::1]:3000"), Some("[::1]:3000"));
        assert_eq!(authority("no-scheme"), None);
    }

    #[test]
    fn components_chain_with_the_unspecified_address() {
        assert_eq!(
            caller(Some("0.0.0.0:0"), Some("dev-mailbox.spin.internal")),
            Caller::Component
        );
        // Spin sends no Host header on a chained request.
        assert_eq!(caller(Some("0.0.0.0:0"), None), Caller::Component);
    }
}
