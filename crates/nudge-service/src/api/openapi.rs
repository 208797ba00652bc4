//! The OpenAPI 3.1 description of the HTTP API, `schema/openapi.json`, built into the binary
//! and served at `GET /openapi.json`. Its operations are the router's (`routes.rs`), plus
//! those only `nudge serve` has (marked `x-nudge-serve-only`): the tests below and
//! `nudge_local::server`'s hold them equal.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};

use super::reply::{json_bytes_reply, Reply};

/// The description, as kept in the repository.
pub const DESCRIPTION: &str = include_str!("../../../../schema/openapi.json");

/// The extension that marks an operation only `nudge serve` has.
pub const SERVE_ONLY: &str = "x-nudge-serve-only";

/// The methods an OpenAPI path item can hold operations under.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One operation of the description: its method (upper case), path and whether it is
/// `nudge serve`'s alone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DescribedOperation {
    pub method: String,
    pub path: String,
    pub serve_only: bool,
}

/// Every operation the description lists; `None` if it is not a description (a test checks).
pub fn described_operations() -> Option<Vec<DescribedOperation>> {
    let doc: serde_json::Value = serde_json::from_str(DESCRIPTION).ok()?;
    let mut ops = Vec::new();
    for (path, item) in doc.get("paths")?.as_object()? {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                ops.push(DescribedOperation {
                    method: method.to_ascii_uppercase(),
                    path: path.clone(),
                    serve_only: op.get(SERVE_ONLY).and_then(|v| v.as_bool()) == Some(true),
                });
            }
        }
    }
    ops.sort();
    Some(ops)
}

/// `GET /openapi.json`.
pub(super) fn description() -> Reply {
    let mut r = json_bytes_reply(StatusCode::OK, Bytes::from_static(DESCRIPTION.as_bytes()));
    // The bytes change only with the binary.
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::routes::ROUTES;
    use std::collections::BTreeSet;

    #[test]
    fn the_description_is_openapi_3_1() {
        let doc: serde_json::Value = serde_json::from_str(DESCRIPTION).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(described_operations().is_some_and(|ops| !ops.is_empty()));
    }

    /// A route added to the router without its description (or described and not routed)
    /// fails here: the API's routes are exactly the operations not marked serve-only.
    #[test]
    fn every_route_of_the_router_is_described_and_every_described_operation_routed() {
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        let described: BTreeSet<(String, String)> = described_operations()
            .unwrap()
            .into_iter()
            .filter(|op| !op.serve_only)
            .map(|op| (op.method, op.path))
            .collect();
        let undocumented: Vec<_> = routed.difference(&described).collect();
        let unrouted: Vec<_> = described.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from schema/openapi.json: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "described operations no route answers (mark those of `nudge serve` alone \
             x-nudge-serve-only): {unrouted:?}"
        );
    }

    #[test]
    fn every_operation_has_an_id_a_summary_security_and_answers() {
        let doc: serde_json::Value = serde_json::from_str(DESCRIPTION).unwrap();
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let id = op["operationId"].as_str().unwrap_or_default();
                assert!(!id.is_empty(), "{method} {path} has no operationId");
                assert!(ids.insert(id.to_string()), "operationId {id} twice");
                assert!(op["summary"].is_string(), "{method} {path} has no summary");
                assert!(
                    op["security"].is_array(),
                    "{method} {path} does not say its security"
                );
                assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
            }
        }
    }

    #[test]
    fn the_description_is_served_as_json() {
        let r = description();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(r.body().as_ref(), DESCRIPTION.as_bytes());
    }
}
