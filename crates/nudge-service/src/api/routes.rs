//! Every operation of the HTTP API as a method and a path template, named as the OpenAPI
//! description (`schema/openapi.json`) names them. The router answers only what this table
//! lists, and a test holds the table equal to the description, so no route goes undocumented.

use std::sync::LazyLock;

use http::Method;

/// What an operation does: the router dispatches on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Health,
    Description,
    /// A Segment-compatible tracking endpoint (which one: `ingest::Endpoint::of_path`).
    Track,
    SdkMetrics,
    Inbox,
    InboxStream,
    InboxRead,
    InboxDismiss,
    Click,
    OpenPixel,
    InboxWidget,
    Unsubscribe,
    User,
    EraseUser,
    UserTimer,
    UserDecisions,
    ExplainUser,
    Report,
    TriggerReport,
    FunnelReport,
    ExperimentReport,
}

/// One operation: a method on a path template whose `{name}` segments are parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub operation: Operation,
}

const fn route(method: Method, path: &'static str, operation: Operation) -> Route {
    Route {
        method,
        path,
        operation,
    }
}

use Operation::*;

/// The HTTP API, on `nudge serve` and behind API Gateway alike (`nudge serve` adds a few
/// routes of its own: `nudge_local::server`).
pub const ROUTES: &[Route] = &[
    route(Method::GET, "/healthz", Health),
    route(Method::GET, "/openapi.json", Description),
    route(Method::POST, "/v1/track", Track),
    route(Method::POST, "/v1/identify", Track),
    route(Method::POST, "/v1/page", Track),
    route(Method::POST, "/v1/screen", Track),
    route(Method::POST, "/v1/group", Track),
    route(Method::POST, "/v1/alias", Track),
    route(Method::POST, "/v1/batch", Track),
    route(Method::POST, "/v1/import", Track),
    // The paths analytics.js posts to (the type's first letter), and the mobile SDKs' batch.
    route(Method::POST, "/v1/t", Track),
    route(Method::POST, "/v1/i", Track),
    route(Method::POST, "/v1/p", Track),
    route(Method::POST, "/v1/s", Track),
    route(Method::POST, "/v1/g", Track),
    route(Method::POST, "/v1/a", Track),
    route(Method::POST, "/v1/b", Track),
    // RudderStack's sendBeacon transport.
    route(Method::POST, "/beacon/v1/batch", Track),
    route(Method::POST, "/v1/m", SdkMetrics),
    route(Method::GET, "/v1/users/{userId}/inbox", Inbox),
    route(Method::GET, "/v1/users/{userId}/inbox/stream", InboxStream),
    route(
        Method::POST,
        "/v1/users/{userId}/inbox/{id}/read",
        InboxRead,
    ),
    route(
        Method::POST,
        "/v1/users/{userId}/inbox/{id}/dismiss",
        InboxDismiss,
    ),
    route(Method::GET, "/v1/c/{token}", Click),
    route(Method::GET, "/v1/o/{token}", OpenPixel),
    route(Method::GET, "/v1/sdk/inbox.js", InboxWidget),
    route(Method::GET, "/v1/unsubscribe", Unsubscribe),
    route(Method::POST, "/v1/unsubscribe", Unsubscribe),
    route(Method::GET, "/v1/admin/users/{userId}", User),
    route(Method::DELETE, "/v1/admin/users/{userId}", EraseUser),
    route(Method::GET, "/v1/admin/users/{userId}/timers", UserTimer),
    route(
        Method::GET,
        "/v1/admin/users/{userId}/decisions",
        UserDecisions,
    ),
    route(Method::GET, "/v1/admin/users/{userId}/explain", ExplainUser),
    route(Method::GET, "/v1/admin/reports", Report),
    route(
        Method::GET,
        "/v1/admin/reports/triggers/{id}",
        TriggerReport,
    ),
    route(Method::GET, "/v1/admin/reports/funnels/{id}", FunnelReport),
    route(
        Method::GET,
        "/v1/admin/reports/experiments/{id}",
        ExperimentReport,
    ),
];

/// A path's segments, percent-decoded (a trailing `/` is dropped): what templates match.
pub fn path_segments(path: &str) -> Vec<String> {
    path.trim_end_matches('/')
        .split('/')
        .skip(1)
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// Whether a path's segments are under `/v1/admin`, where the admin key is asked first.
pub fn is_admin_path(segments: &[&str]) -> bool {
    segments.starts_with(&["v1", "admin"])
}

/// The values of a matched route's parameters, in the template's order (two at most).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Params<'a> {
    values: [&'a str; 2],
    len: usize,
}

impl<'a> Params<'a> {
    /// The `i`-th parameter (`""` past the last: the table's templates say how many there are).
    pub fn get(&self, i: usize) -> &'a str {
        if i < self.len {
            self.values[i]
        } else {
            ""
        }
    }
}

/// A template, split once.
struct Template {
    route: &'static Route,
    /// `None` for a `{parameter}`.
    segments: Vec<Option<&'static str>>,
}

static TEMPLATES: LazyLock<Vec<Template>> = LazyLock::new(|| {
    ROUTES
        .iter()
        .map(|route| Template {
            route,
            segments: route
                .path
                .split('/')
                .skip(1)
                .map(|s| (!s.starts_with('{')).then_some(s))
                .collect(),
        })
        .collect()
});

/// The routes whose template matches the segments, with their parameters. A parameter
/// matches one non-empty segment: `/v1/users//inbox` names no user.
pub fn routes_at<'a>(segments: &[&'a str]) -> Vec<(&'static Route, Params<'a>)> {
    TEMPLATES
        .iter()
        .filter(|t| t.segments.len() == segments.len())
        .filter_map(|t| {
            let mut params = Params::default();
            for (want, got) in t.segments.iter().zip(segments) {
                match want {
                    Some(literal) if literal == got => {}
                    None if !got.is_empty() && params.len < params.values.len() => {
                        params.values[params.len] = got;
                        params.len += 1;
                    }
                    _ => return None,
                }
            }
            Some((t.route, params))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Endpoint;

    fn at(path: &str) -> Vec<(Method, Operation, Vec<String>)> {
        let segments = path_segments(path);
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        routes_at(&segments)
            .into_iter()
            .map(|(r, p)| {
                let n = r.path.matches('{').count();
                (
                    r.method.clone(),
                    r.operation,
                    (0..n).map(|i| p.get(i).to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn templates_match_decoded_segments_and_capture_parameters_in_order() {
        assert_eq!(
            at("/v1/users/a%2Fb/inbox/00000000000000ff/read"),
            vec![(
                Method::POST,
                InboxRead,
                vec!["a/b".to_string(), "00000000000000ff".to_string()]
            )]
        );
        assert_eq!(at("/v1/track/"), vec![(Method::POST, Track, vec![])]);
        let erase_and_view = at("/v1/admin/users/ada");
        assert_eq!(erase_and_view.len(), 2, "GET and DELETE share the path");
    }

    #[test]
    fn an_empty_parameter_segment_matches_nothing() {
        assert!(at("/v1/users//inbox").is_empty());
        assert!(at("/v1/admin/reports/triggers/").is_empty());
        assert!(at("/").is_empty());
    }

    #[test]
    fn every_tracking_route_is_an_ingest_endpoint_and_no_other_route_is() {
        for r in ROUTES {
            assert_eq!(
                Endpoint::of_path(r.path).is_some(),
                r.operation == Track,
                "{} {}",
                r.method,
                r.path
            );
        }
    }

    #[test]
    fn no_two_routes_answer_the_same_request() {
        // Two templates of one method overlap when every segment could match both: a
        // parameter against anything, or the same literal.
        for (i, a) in TEMPLATES.iter().enumerate() {
            for b in &TEMPLATES[i + 1..] {
                if a.route.method != b.route.method || a.segments.len() != b.segments.len() {
                    continue;
                }
                let overlap = a
                    .segments
                    .iter()
                    .zip(&b.segments)
                    .all(|(x, y)| x.is_none() || y.is_none() || x == y);
                assert!(!overlap, "{} and {} overlap", a.route.path, b.route.path);
            }
        }
    }
}
