//! The work behind the bus in `nudge serve`: evaluate workers (each user always on the same
//! one), schedule-delay, deliver (many sends at once), the journal's dispatcher and upkeep,
//! the queue's dispatcher and acks, and the timer loop standing in for the sweeper.

use std::sync::Arc;
use std::time::Duration;

use nudge_service::metrics::Metrics;
use nudge_service::ports::{Clock, SystemClock};
use tokio::sync::{mpsc, Notify, Semaphore};
use tracing::{info, warn};

use crate::bus::{ack_loop, dispatch, dispatch_journal, maintain_journal, run_job, Job, Routes};
use crate::handlers::Handlers;
use crate::journal::Journal;

/// Starts the workers on the current runtime.
pub fn start_workers(
    h: &Arc<Handlers>,
    rx: mpsc::UnboundedReceiver<crate::bus::Delivery>,
    journal: &Journal,
    evaluate_workers: usize,
    timers_changed: Arc<Notify>,
) {
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    tokio::spawn(ack_loop(h.store.clone(), ack_rx));

    let mut evaluate = Vec::new();
    for _ in 0..evaluate_workers.max(1) {
        let (tx, mut jobs) = mpsc::unbounded_channel::<Job>();
        evaluate.push(tx);
        let h = h.clone();
        tokio::spawn(async move {
            while let Some(job) = jobs.recv().await {
                run_job(job, |event| {
                    let h = h.clone();
                    async move {
                        let r = h.evaluate.handle(&event).await;
                        (event, r)
                    }
                })
                .await;
            }
        });
    }

    let (schedule_tx, mut schedule_jobs) = mpsc::unbounded_channel::<Job>();
    {
        let h = h.clone();
        tokio::spawn(async move {
            while let Some(job) = schedule_jobs.recv().await {
                run_job(job, |event| {
                    let h = h.clone();
                    async move {
                        let r = h.schedule.handle(&event).await;
                        (event, r)
                    }
                })
                .await;
                timers_changed.notify_one();
            }
        });
    }

    let (deliver_tx, mut deliver_jobs) = mpsc::unbounded_channel::<Job>();
    {
        let h = h.clone();
        // Webhooks wait on slow receivers and retries: deliver runs many sends at once.
        let slots = Arc::new(Semaphore::new(256));
        tokio::spawn(async move {
            while let Some(job) = deliver_jobs.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let h = h.clone();
                tokio::spawn(async move {
                    run_job(job, |event| {
                        let h = h.clone();
                        async move {
                            let r = h.deliver.handle(&event).await;
                            (event, r)
                        }
                    })
                    .await;
                    drop(slot);
                });
            }
        });
    }

    tokio::spawn(dispatch_journal(
        journal.reader(),
        h.bus.clone(),
        evaluate.clone(),
    ));
    tokio::spawn(maintain_journal(journal.clone()));
    let routes = Routes {
        evaluate,
        schedule: schedule_tx,
        deliver: deliver_tx,
        acks: ack_tx,
    };
    tokio::spawn(dispatch(rx, h.bus.clone(), routes));
}

/// Sleeps until the earliest timer is due (or a timer changes), then fires the due ones
/// (claim and queue in one transaction, so a crash neither loses nor repeats a timer); purges
/// expired rows once a minute.
pub async fn timer_loop(h: Arc<Handlers>, changed: Arc<Notify>) {
    let mut last_purge = 0;
    loop {
        let now = SystemClock.now();
        if now - last_purge >= 60_000 {
            if let Err(e) = h.store.purge_expired(now).await {
                warn!(error = %e, "purge of expired rows failed");
            }
            last_purge = now;
        }
        match h.bus.fire_due_timers(SystemClock.now()).await {
            Ok(n) if n > 0 => info!(fired = n, "timers fired"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "timer sweep failed"),
        }
        h.metrics.queue_depth(h.bus.depth());
        let next = match h.store.next_due().await {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "cannot read the next timer");
                None
            }
        };
        let now = SystemClock.now();
        let wait = next.map_or(1_000, |due| (due - now).clamp(0, 1_000)) as u64;
        if wait == 0 {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = changed.notified() => {}
        }
    }
}
