#![no_main]
//! Each Lambda function's input, as the runtime hands it over (JSON): ingest's API Gateway
//! request (read by `lambda_http`, then turned into the API's request), evaluate's and
//! deliver's bus envelope, and schedule-delay's four kinds of input told apart, with what
//! schedule-delay reads inside them (expired timers from stream records, wake-ups from queue
//! messages). Every input is tried as each; a bus event must also survive the trip through
//! EventBridge (its detail written and read back).

use libfuzzer_sys::fuzz_target;
use nudge_fuzz::panics;
use nudge_lambda_events::api_gateway::{read_request, service_path, to_service_request};
use nudge_lambda_events::schedule_input::ScheduleInput;
use nudge_lambda_events::stream::expired_timer;
use nudge_lambda_events::wakeup::Wakeup;
use nudge_lambda_events::BusEnvelope;
use nudge_service::bus::BusEvent;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // ingest
    // read_request catches lambda_http's panics (its errors): run where a caught panic is no crash.
    if let Ok(req) = panics::contained(|| read_request(text)) {
        let _ = service_path(&req);
        let _ = to_service_request(req);
    }
    // evaluate, deliver
    if let Ok(envelope) = serde_json::from_str::<BusEnvelope>(text) {
        bus_event(envelope.detail);
    }
    // schedule-delay
    match serde_json::from_str::<ScheduleInput>(text) {
        Ok(ScheduleInput::Bus(envelope)) => bus_event(envelope.detail),
        Ok(ScheduleInput::Sweep(_)) | Err(_) => {}
        Ok(ScheduleInput::Stream(batch)) => {
            for record in &batch.records {
                let _ = expired_timer(record);
            }
        }
        Ok(ScheduleInput::Queue(batch)) => {
            for record in &batch.records {
                let body = record.body.as_deref().unwrap_or_default();
                if let Ok(wakeup) = Wakeup::from_body(body) {
                    assert_eq!(Wakeup::from_body(&wakeup.body()).ok(), Some(wakeup));
                }
            }
        }
    }
});

/// What the handlers do with a bus event before their own work, and the event's trip through
/// EventBridge: the detail written and read back is the same event.
fn bus_event(event: BusEvent) {
    let _ = event.user_id();
    let detail = event.to_detail();
    let back: Result<BusEvent, _> = serde_json::from_str(&detail);
    assert_eq!(
        back.as_ref().ok(),
        Some(&event),
        "a bus event changed through its detail: {detail}"
    );
    // The detail's `type` is its detail-type (see `BusEvent`).
    let written: serde_json::Value = serde_json::from_str(&detail).expect("the detail is JSON");
    assert_eq!(written["type"].as_str(), Some(event.detail_type()));
    let _ = event.unpack();
}
