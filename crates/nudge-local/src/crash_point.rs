//! Crash points: the moments where a crash hurts most (a journal record half written, a group
//! commit writing the WAL, a checkpoint copying it), where the crash tests have the process
//! kill itself with SIGKILL, exactly as `kill -9` from outside would, so that a kill is known
//! to land there and not merely near it.
//!
//! Off unless `NUDGE_CRASH_POINT=<point>[:<hits>]` is set (`journal-append`, `group-commit`
//! or `wal-checkpoint`; `hits` passes that many first and arms the next one). Unset, a point
//! costs one load of a value read once. Never set it outside a crash test.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The variable naming the crash point to arm.
pub const VARIABLE: &str = "NUDGE_CRASH_POINT";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Part of a journal append written, the rest not (a torn record).
    JournalAppend,
    /// While SQLite commits a group of writes.
    GroupCommit,
    /// While a checkpoint copies the WAL into the database file.
    WalCheckpoint,
}

impl Point {
    fn parse(name: &str) -> Option<Point> {
        match name {
            "journal-append" => Some(Point::JournalAppend),
            "group-commit" => Some(Point::GroupCommit),
            "wal-checkpoint" => Some(Point::WalCheckpoint),
            _ => None,
        }
    }
}

struct Armed {
    point: Point,
    /// Hits still to pass before the point fires.
    pass: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var(VARIABLE).ok()?;
            let (name, hits) = spec.split_once(':').unwrap_or((&spec, "0"));
            let point = Point::parse(name)?;
            let pass = hits.parse().ok()?;
            Some(Armed {
                point,
                pass: AtomicU64::new(pass),
            })
        })
        .as_ref()
}

/// Whether this hit of `point` is the one that must crash.
pub fn fires(point: Point) -> bool {
    let Some(armed) = armed() else {
        return false;
    };
    armed.point == point
        && armed
            .pass
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| p.checked_sub(1))
            .is_err()
}

/// Kills the process now, as `kill -9` does: no destructor, no flush, no exit handler.
pub fn crash() -> ! {
    // SAFETY: `kill` with our own pid and a valid signal number has no memory effects.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL cannot be caught; this is not reached.
    std::process::abort()
}

/// Runs `work`; if this hit of `point` fires, a second thread kills the process while `work`
/// is still running, after a random delay of up to `within`. A kill that would come too late
/// (the work is done) is called off and the point fires at its next hit instead.
pub fn during<T>(point: Point, within: Duration, work: impl FnOnce() -> T) -> T {
    if !fires(point) {
        return work();
    }
    let busy = Arc::new(AtomicBool::new(true));
    let watching = busy.clone();
    let mut random = [0u8; 4];
    let _ = getrandom::fill(&mut random);
    let delay = within.mul_f64(f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX));
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        if watching.load(Ordering::SeqCst) {
            crash();
        }
    });
    let out = work();
    busy.store(false, Ordering::SeqCst);
    if let Some(armed) = armed() {
        // Missed: the next hit fires.
        armed.pass.store(0, Ordering::SeqCst);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_points_parse_and_others_do_not() {
        assert_eq!(Point::parse("journal-append"), Some(Point::JournalAppend));
        assert_eq!(Point::parse("group-commit"), Some(Point::GroupCommit));
        assert_eq!(Point::parse("wal-checkpoint"), Some(Point::WalCheckpoint));
        assert_eq!(Point::parse("checkpoint"), None);
    }

    #[test]
    fn unset_no_point_fires() {
        // The test process has no NUDGE_CRASH_POINT: nothing fires, work runs.
        assert!(std::env::var_os(VARIABLE).is_none());
        assert!(!fires(Point::JournalAppend));
        assert_eq!(during(Point::GroupCommit, Duration::ZERO, || 7), 7);
    }
}
