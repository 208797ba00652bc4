//! The reports (admin key): `GET /v1/admin/reports[?from=&to=]` for every trigger, funnel and
//! experiment of the rules, and `.../reports/{triggers,funnels,experiments}/<id>` for one.
//! Counters are hourly, so the period is whole hours (`from` rounded down, `to` up); the
//! default is the last 30 days.

use bytes::Bytes;
use http::{Request, StatusCode};
use nudge_core::insights::{Period, Report};
use nudge_core::time::parse_instant;
use serde_json::json;

use super::reply::{error_reply, json_bytes_reply, json_reply, store_failure, Reply};
use super::{query_param, Api, Store};
use crate::ports::{Bus, Clock};

/// The default period, back from now.
const DEFAULT_DAYS: i64 = 30;
/// The longest period a report reads.
const MAX_DAYS: i64 = 400;
const DAY_MS: i64 = 86_400_000;

/// What a report request asks for: everything, or one item by its id in the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReportScope<'a> {
    All,
    Trigger(&'a str),
    Funnel(&'a str),
    Experiment(&'a str),
}

impl<S: Store, B: Bus, C: Clock> Api<S, B, C> {
    pub(super) async fn reports(&self, req: &Request<Bytes>, scope: ReportScope<'_>) -> Reply {
        let period = match self.report_period(req) {
            Ok(p) => p,
            Err(msg) => return error_reply(StatusCode::BAD_REQUEST, "invalid_period", &msg),
        };
        // An unknown id is a 404 before any read.
        let unknown = match scope {
            ReportScope::All => None,
            ReportScope::Trigger(id) => self
                .rules
                .trigger_index(id)
                .is_none()
                .then_some(("trigger", id)),
            ReportScope::Funnel(id) => {
                (!self.rules.funnels.iter().any(|f| &*f.id == id)).then_some(("funnel", id))
            }
            ReportScope::Experiment(id) => {
                (!self.rules.experiments.iter().any(|e| &*e.id == id)).then_some(("experiment", id))
            }
        };
        if let Some((kind, id)) = unknown {
            return error_reply(
                StatusCode::NOT_FOUND,
                "unknown_id",
                &format!("the rules have no {kind} `{id}`"),
            );
        }
        let sums = match self.store.report_sums(period).await {
            Ok(s) => s,
            Err(e) => return store_failure(&e),
        };
        let report = Report::build(&self.rules, period, &sums);
        match scope {
            ReportScope::Trigger(id) => {
                one(&report, report.triggers.iter().find(|t| t.trigger == id))
            }
            ReportScope::Funnel(id) => one(&report, report.funnels.iter().find(|f| f.funnel == id)),
            ReportScope::Experiment(id) => one(
                &report,
                report.experiments.iter().find(|e| e.experiment == id),
            ),
            ReportScope::All => match serde_json::to_vec(&report) {
                Ok(body) => json_bytes_reply(StatusCode::OK, Bytes::from(body)),
                Err(e) => error_reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    &format!("could not write the report: {e}"),
                ),
            },
        }
    }

    /// `from` and `to` as RFC 3339 instants; what is wrong otherwise.
    fn report_period(&self, req: &Request<Bytes>) -> Result<Period, String> {
        let instant = |name: &str| match query_param(req, name) {
            None => Ok(None),
            Some(v) => parse_instant(&v).map(Some).map_err(|e| {
                format!("`{name}` must be an RFC 3339 time like 2026-03-02T00:00:00Z: {e}")
            }),
        };
        let to = instant("to")?.unwrap_or_else(|| self.clock.now());
        let from = instant("from")?.unwrap_or(to - DEFAULT_DAYS * DAY_MS);
        if from > to {
            return Err("`from` is after `to`".into());
        }
        if to - from > MAX_DAYS * DAY_MS {
            return Err(format!("a report covers at most {MAX_DAYS} days"));
        }
        Ok(Period::covering(from, to))
    }
}

/// One item of a report, with the report's period.
fn one<T: serde::Serialize>(report: &Report, item: Option<&T>) -> Reply {
    match item {
        Some(item) => json_reply(
            StatusCode::OK,
            &json!({"period": report.period, "events": report.events, "users": report.users, "item": item}),
        ),
        None => error_reply(StatusCode::NOT_FOUND, "unknown_id", "not in the report"),
    }
}
