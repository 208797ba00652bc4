//! The runtime for work behind the bus (evaluate, schedule-delay, deliver, timers), whose
//! threads run at the lowest scheduling priority (Linux's `SCHED_IDLE`); the SQLite writer
//! thread, which does that work's storage, lowers its own the same way.
//!
//! Accepting an event is what a client waits for; evaluating it is asynchronous (on AWS, too,
//! ingest answers once the event is on the bus). When both want the CPU, the API goes first
//! (a waking API thread preempts a background one at once) and a burst queues in the journal;
//! whenever the API leaves a core idle, background threads take it. Under an overload that
//! keeps every core busy with requests, evaluation waits until the backlog reaches its bound,
//! and then ingest waits for evaluation: the API slows down, nothing is lost or starved for
//! good. Where `SCHED_IDLE` is refused the threads take nice 10 instead (a weight: about a
//! tenth of a contended core).

/// The nice value background threads take where `SCHED_IDLE` is refused.
#[cfg(target_os = "linux")]
const NICE: libc::c_int = 10;

/// A multi-threaded runtime (one worker per core) whose threads, the blocking pool's
/// included, run at a lower priority where the OS allows threads their own (Linux).
pub fn background_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("nudge-work")
        .on_thread_start(lower_this_thread)
        .enable_all()
        .build()
}

/// Lowers the calling thread's priority.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        // On Linux, pid 0 here is the calling thread alone (each thread has its own policy
        // and nice value). Failing leaves the thread at normal priority, which is only slower.
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain integers and a valid `sched_param` that outlives the call.
        let idle = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0;
        if !idle {
            // SAFETY: setpriority takes plain integers and touches no memory of ours.
            let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn background_threads_run_at_idle_priority_and_others_do_not() {
        // SAFETY: sched_getscheduler reads the calling thread's policy.
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let before = policy();
        assert_ne!(before, libc::SCHED_IDLE);
        let rt = super::background_runtime().unwrap();
        let inside = rt.block_on(async { tokio::spawn(async move { policy() }).await.unwrap() });
        assert_eq!(inside, libc::SCHED_IDLE);
        let blocking = rt.block_on(async { tokio::task::spawn_blocking(policy).await.unwrap() });
        assert_eq!(blocking, libc::SCHED_IDLE);
        assert_eq!(policy(), before);
    }
}
