//! Spin's HTTP routing, as Spin's router (over `routefinder`) does it: exact segments, `:param`
//! segments (a parameter ends at `/`, or at `.` when the route has a `.` after it, as in
//! `/files/:name.txt`), and a trailing wildcard written `/...` or `/*`; the most specific match
//! wins. Leading and trailing slashes of a path are ignored, and nothing else is normalised:
//! `/api//setup` does not match `/api/setup`.

use std::cmp::Ordering;

use anyhow::{Result, bail};

/// A parsed `route` of a `[[trigger.http]]`.
#[derive(Debug, Clone)]
pub struct Route {
    /// As written in the manifest.
    raw: String,
    /// With a leading `/` and without one trailing `/` (see [`Route::based`]).
    based: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

/// One `/`-separated segment of a route: literal text and parameters.
#[derive(Debug, Clone, PartialEq)]
struct Segment(Vec<Piece>);

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Param(String),
}

/// What matching a path against a route found.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    /// `:name` parameters, in route order.
    pub params: Vec<(String, String)>,
    /// What the wildcard matched, as Spin's `spin-path-info`: `/rest`, with a trailing `/`
    /// when the path has one; `/` for the wildcard's own prefix with a trailing slash; empty
    /// otherwise.
    pub path_info: String,
}

/// A path's segments as routefinder sees them: leading and trailing slashes removed, empty
/// segments between two slashes kept.
fn path_segments(path: &str) -> Vec<&str> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    }
}

impl Segment {
    fn parse(text: &str, route: &str) -> Result<Self> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix(':') {
                let end = after.find('.').unwrap_or(after.len());
                let name = &after[..end];
                if name.is_empty() {
                    bail!("route \"{route}\": params must be named, as in /:id");
                }
                pieces.push(Piece::Param(name.to_string()));
                rest = &after[end..];
            } else {
                let end = rest[1..].find(':').map_or(rest.len(), |i| i + 1);
                pieces.push(Piece::Literal(rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
        Ok(Self(pieces))
    }

    /// Matches one path segment; appends the parameters it captured.
    fn matches(&self, part: &str, params: &mut Vec<(String, String)>) -> bool {
        let mut rest = part;
        for (i, piece) in self.0.iter().enumerate() {
            match piece {
                Piece::Literal(l) => match rest.strip_prefix(l.as_str()) {
                    Some(r) => rest = r,
                    None => return false,
                },
                Piece::Param(name) => {
                    // Up to the first `.` when literal text follows, else the whole rest.
                    let end = match self.0.get(i + 1) {
                        Some(Piece::Literal(_)) => rest.find('.').unwrap_or(rest.len()),
                        _ => rest.len(),
                    };
                    params.push((name.clone(), rest[..end].to_string()));
                    rest = &rest[end..];
                }
            }
        }
        rest.is_empty()
    }

    /// How specific the segment is: literal text beats literal text with parameters, which
    /// beats a lone parameter.
    fn rank(&self) -> u8 {
        let params = self
            .0
            .iter()
            .filter(|p| matches!(p, Piece::Param(_)))
            .count();
        match (params, self.0.len()) {
            (0, _) => 4,
            (_, n) if n > params => 3,
            _ => 2,
        }
    }
}

impl Route {
    /// Parses a route such as `/api/clients/:id`, `/static/...` or `/files/:name.txt`. A route
    /// without a leading `/` is taken as if it had one, as Spin does.
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = path_segments(text);
        let wildcard = matches!(parts.last(), Some(&"..." | &"*"));
        if wildcard {
            parts.pop();
        }
        let mut segments = Vec::new();
        for part in parts {
            if part.contains('*') {
                bail!(
                    "route \"{text}\": a wildcard may only end a route, written /... or /* (Spin accepts this route but fails every request that reaches it)"
                );
            }
            if part.contains("...") {
                bail!("route \"{text}\": `...` may only end a route");
            }
            segments.push(Segment::parse(part, text)?);
        }
        let absolute = if text.starts_with('/') {
            text.to_string()
        } else {
            format!("/{text}")
        };
        let based = absolute
            .strip_suffix('/')
            .map(str::to_string)
            .unwrap_or(absolute);
        Ok(Self {
            raw: text.to_string(),
            based,
            segments,
            wildcard,
        })
    }

    /// The route as written in the manifest (`spin-raw-component-route`).
    pub fn text(&self) -> &str {
        &self.raw
    }

    /// `spin-matched-route`: the route with a leading `/` and without one trailing `/`, so
    /// the route `/` gives the empty string.
    pub fn based(&self) -> &str {
        &self.based
    }

    /// `spin-component-route`: the route as written without a trailing `/...`, so `/...`
    /// gives the empty string.
    pub fn component_route(&self) -> &str {
        self.raw.strip_suffix("/...").unwrap_or(&self.raw)
    }

    /// Matches a request path (without query).
    pub fn matches(&self, path: &str) -> Option<RouteMatch> {
        let parts = path_segments(path);
        if parts.len() < self.segments.len()
            || (!self.wildcard && parts.len() != self.segments.len())
        {
            return None;
        }
        let mut params = Vec::new();
        for (segment, part) in self.segments.iter().zip(&parts) {
            if !segment.matches(part, &mut params) {
                return None;
            }
        }
        let rest = parts[self.segments.len()..].join("/");
        let trailing = path.ends_with('/');
        let path_info = match (self.wildcard, rest.is_empty(), trailing) {
            (false, _, _) | (true, true, false) => String::new(),
            (true, true, true) => "/".into(),
            (true, false, false) => format!("/{rest}"),
            (true, false, true) => format!("/{rest}/"),
        };
        Some(RouteMatch { params, path_info })
    }

    /// Orders two routes that both match a path: `Greater` means `self` is more specific.
    /// Segments compare left to right (literal beats literal with parameters beats a
    /// parameter beats the wildcard); a route that ends exactly where the path ends beats a
    /// wildcard.
    pub fn specificity(&self, other: &Self) -> Ordering {
        let rank = |r: &Route, i: usize| -> u8 {
            match r.segments.get(i) {
                Some(s) => s.rank(),
                None if r.wildcard => 1,
                None => 5,
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

/// The header name Spin gives a route parameter: `spin-path-match-` and the name in lower
/// case with `_` written `-` (`:path_segment` → `spin-path-match-path-segment`).
pub fn path_match_header(param: &str) -> String {
    format!(
        "spin-path-match-{}",
        param.to_ascii_lowercase().replace('_', "-")
    )
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

    /// The most specific route matching `path`; of equally specific ones, the first declared.
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

    fn info(route: &str, path: &str) -> Option<String> {
        Route::parse(route)
            .unwrap()
            .matches(path)
            .map(|m| m.path_info)
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
    fn path_info_is_spins() {
        // The examples of Spin's router: the wildcard's own prefix, with and without a
        // trailing slash, and the rest of the path with its trailing slash kept.
        assert_eq!(info("/...", "/").as_deref(), Some("/"));
        assert_eq!(info("/...", "/a/b").as_deref(), Some("/a/b"));
        assert_eq!(info("/...", "/a/b/").as_deref(), Some("/a/b/"));
        assert_eq!(info("/api/...", "/api").as_deref(), Some(""));
        assert_eq!(info("/api/...", "/api/").as_deref(), Some("/"));
        assert_eq!(info("/api/...", "/api/x/").as_deref(), Some("/x/"));
        assert_eq!(info("/x/:id", "/x/42/").as_deref(), Some(""));
        assert_eq!(info("/api/...", "/api//setup").as_deref(), Some("//setup"));
        assert_eq!(info("/api/...", "/apis"), None);
    }

    #[test]
    fn empty_segments_are_not_collapsed_but_outer_slashes_are_ignored() {
        let r = router(&["/api/setup"]);
        assert_eq!(winner(&r, "/api//setup"), None);
        assert_eq!(winner(&r, "//api/setup"), Some(0));
        assert_eq!(winner(&r, "/api/setup///"), Some(0));
        let m = Route::parse("/x/:id/y").unwrap().matches("/x//y");
        assert_eq!(m.map(|m| m.params), Some(vec![("id".into(), "".into())]));
    }

    #[test]
    fn the_route_headers_are_spins() {
        let wildcard = Route::parse("/...").unwrap();
        assert_eq!((wildcard.based(), wildcard.component_route()), ("/...", ""));
        let root = Route::parse("/").unwrap();
        assert_eq!((root.based(), root.component_route()), ("", "/"));
        let slash = Route::parse("/foo/").unwrap();
        assert_eq!((slash.based(), slash.component_route()), ("/foo", "/foo/"));
        let nested = Route::parse("/x/:id/...").unwrap();
        assert_eq!(nested.component_route(), "/x/:id");
        let star = Route::parse("/x/*").unwrap();
        assert_eq!(star.component_route(), "/x/*");
        assert_eq!(
            path_match_header("path_segment"),
            "spin-path-match-path-segment"
        );
        assert_eq!(path_match_header("userId"), "spin-path-match-userid");
    }

    #[test]
    fn a_star_is_a_trailing_wildcard() {
        let r = router(&["/x/*"]);
        assert_eq!(winner(&r, "/x"), Some(0));
        assert_eq!(winner(&r, "/x/a/b"), Some(0));
        assert_eq!(info("/x/*", "/x/a/b").as_deref(), Some("/a/b"));
    }

    #[test]
    fn a_param_before_a_dot_stops_at_the_first_dot() {
        let route = Route::parse("/files/:name.txt").unwrap();
        let m = route.matches("/files/report.txt");
        assert_eq!(
            m.map(|m| m.params),
            Some(vec![("name".into(), "report".into())])
        );
        assert!(route.matches("/files/a.b.txt").is_none());
        assert!(route.matches("/files/report.txtx").is_none());
        let pair = Route::parse("/:a.:b").unwrap().matches("/one.two");
        assert_eq!(
            pair.map(|m| m.params),
            Some(vec![("a".into(), "one".into()), ("b".into(), "two".into())])
        );
        // A literal with a dot is more specific than the bare parameter.
        let r = router(&["/files/:name", "/files/:name.txt"]);
        assert_eq!(winner(&r, "/files/a.txt"), Some(1));
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
    fn routes_without_a_leading_slash_are_absolute_and_bad_routes_are_refused() {
        let relative = Route::parse("api").unwrap();
        assert_eq!(relative.based(), "/api");
        assert!(relative.matches("/api").is_some());
        assert!(Route::parse("/a/.../b").is_err());
        assert!(Route::parse("/a/*/b").is_err());
        assert!(Route::parse("/a/:").is_err());
    }
}
