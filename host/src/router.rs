//! Spin's HTTP routing: exact routes, `:param` segments and trailing `/...` wildcards, the most
//! specific match winning.

use std::cmp::Ordering;

use anyhow::{Result, bail};

/// A parsed `route` of a `[[trigger.http]]`.
#[derive(Debug, Clone)]
pub struct Route {
    text: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Exact(String),
    Param(String),
}

/// What matching a path against a route found.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    /// `:name` parameters, in route order.
    pub params: Vec<(String, String)>,
    /// The part of the path the wildcard matched, starting with `/`, or empty.
    pub path_info: String,
}

impl Route {
    /// Parses a route such as `/api/clients/:id` or `/static/...`.
    pub fn parse(text: &str) -> Result<Self> {
        if !text.starts_with('/') {
            bail!("route \"{text}\" must start with /");
        }
        let mut segments = Vec::new();
        let mut wildcard = false;
        let parts: Vec<&str> = text[1..].split('/').filter(|s| !s.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            if *part == "..." {
                if i + 1 != parts.len() {
                    bail!("route \"{text}\": `...` may only end a route");
                }
                wildcard = true;
            } else if let Some(name) = part.strip_prefix(':') {
                if name.is_empty() {
                    bail!("route \"{text}\": a `:` segment needs a name, as in /:id");
                }
                segments.push(Segment::Param(name.to_string()));
            } else {
                segments.push(Segment::Exact((*part).to_string()));
            }
        }
        Ok(Self {
            text: text.to_string(),
            segments,
            wildcard,
        })
    }

    /// The route as written in the manifest.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The route with the wildcard removed, as Spin reports in `spin-component-route`.
    pub fn base(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            out.push('/');
            match s {
                Segment::Exact(e) => out.push_str(e),
                Segment::Param(p) => {
                    out.push(':');
                    out.push_str(p)
                }
            }
        }
        if out.is_empty() { "/".into() } else { out }
    }

    /// Matches a request path (without query).
    pub fn matches(&self, path: &str) -> Option<RouteMatch> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if parts.len() < self.segments.len()
            || (!self.wildcard && parts.len() != self.segments.len())
        {
            return None;
        }
        let mut params = Vec::new();
        for (seg, part) in self.segments.iter().zip(&parts) {
            match seg {
                Segment::Exact(e) if e == part => {}
                Segment::Exact(_) => return None,
                Segment::Param(name) => params.push((name.clone(), (*part).to_string())),
            }
        }
        let rest = &parts[self.segments.len()..];
        let mut path_info = String::new();
        for p in rest {
            path_info.push('/');
            path_info.push_str(p);
        }
        if self.wildcard && path.ends_with('/') && !rest.is_empty() {
            path_info.push('/');
        }
        Some(RouteMatch { params, path_info })
    }

    /// Orders two routes that both match a path: `Greater` means `self` is more specific.
    /// Segments compare left to right (exact beats `:param` beats `...`); a route that ends
    /// exactly where the path ends beats a wildcard.
    pub fn specificity(&self, other: &Self) -> Ordering {
        let rank = |r: &Route, i: usize| -> u8 {
            match r.segments.get(i) {
                Some(Segment::Exact(_)) => 3,
                Some(Segment::Param(_)) => 2,
                None if r.wildcard => 1,
                None => 4,
            }
        };
        let n = self.segments.len().max(other.segments.len()) + 1;
        for i in 0..n {
            match rank(self, i).cmp(&rank(other, i)) {
                Ordering::Equal => continue,
                unequal => return unequal,
            }
        }
        Ordering::Equal
    }
}

/// All routes of an application, each pointing at a component index.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<(Route, usize)>,
}

impl Router {
    /// Adds a route served by component `target`.
    pub fn add(&mut self, route: Route, target: usize) {
        self.routes.push((route, target));
    }

    /// The most specific route matching `path`.
    pub fn find(&self, path: &str) -> Option<(&Route, usize, RouteMatch)> {
        let mut best: Option<(&Route, usize, RouteMatch)> = None;
        for (route, target) in &self.routes {
            if let Some(m) = route.matches(path) {
                let better = match &best {
                    None => true,
                    Some((b, _, _)) => route.specificity(b) == Ordering::Greater,
                };
                if better {
                    best = Some((route, *target, m));
                }
            }
        }
        best
    }

    /// The routes in manifest order, for the start-up listing.
    pub fn routes(&self) -> impl Iterator<Item = &(Route, usize)> {
        self.routes.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router {
        let mut r = Router::default();
        for (i, text) in routes.iter().enumerate() {
            r.add(Route::parse(text).unwrap(), i);
        }
        r
    }

    fn winner(r: &Router, path: &str) -> Option<usize> {
        r.find(path).map(|(_, t, _)| t)
    }

    #[test]
    fn exact_beats_wildcard_and_param() {
        let r = router(&[
            "/...",
            "/api/...",
            "/api/clients/:id",
            "/api/clients/search",
        ]);
        assert_eq!(winner(&r, "/index.html"), Some(0));
        assert_eq!(winner(&r, "/api/auth/login"), Some(1));
        assert_eq!(winner(&r, "/api/clients/7"), Some(2));
        assert_eq!(winner(&r, "/api/clients/search"), Some(3));
        assert_eq!(winner(&r, "/api/clients/7/history"), Some(1));
    }

    #[test]
    fn a_wildcard_matches_its_own_prefix() {
        let r = router(&["/dev/mailbox/..."]);
        let m = r.find("/dev/mailbox").map(|(_, _, m)| m);
        assert_eq!(m.map(|m| m.path_info), Some(String::new()));
        let m = r.find("/dev/mailbox/api/messages").map(|(_, _, m)| m);
        assert_eq!(m.map(|m| m.path_info), Some("/api/messages".to_string()));
        assert_eq!(winner(&r, "/dev/mailboxes"), None);
    }

    #[test]
    fn the_root_route_is_exact() {
        let r = router(&["/", "/..."]);
        assert_eq!(winner(&r, "/"), Some(0));
        assert_eq!(winner(&r, "/a"), Some(1));
        let r = router(&["/"]);
        assert_eq!(winner(&r, "/a"), None);
    }

    #[test]
    fn params_are_captured() {
        let r = router(&["/api/clients/:id/portal-password/..."]);
        let m = r
            .find("/api/clients/42/portal-password/reset")
            .map(|(_, _, m)| m);
        assert_eq!(
            m,
            Some(RouteMatch {
                params: vec![("id".into(), "42".into())],
                path_info: "/reset".into(),
            })
        );
    }

    #[test]
    fn a_literal_earlier_in_the_path_wins() {
        let r = router(&["/:kind/b", "/a/..."]);
        assert_eq!(winner(&r, "/a/b"), Some(1));
    }

    #[test]
    fn bad_routes_are_refused() {
        assert!(Route::parse("api").is_err());
        assert!(Route::parse("/a/.../b").is_err());
        assert!(Route::parse("/a/:").is_err());
    }
}
