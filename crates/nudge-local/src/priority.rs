//! The runtime for work behind the bus (evaluate, schedule-delay, deliver, timers), whose
//! threads run at a lower scheduling priority than the HTTP API's; the SQLite writer thread,
//! which does that work's storage, lowers its own the same way.
//!
//! Accepting an event is what a client waits for; evaluating it is asynchronous (on AWS, too,
//! ingest answers once the event is on the bus). When both want the CPU, the API goes first
//! and a burst queues in the journal; when the API is idle, background threads take whatever
//! CPU there is. A lower priority is a weight, not a ban: under a sustained overload evaluate
//! still gets about a tenth of a contended core, and once the backlog reaches its bound
//! ingest waits for it.

/// The nice value background threads take (0 is normal, 19 the lowest priority).
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
        // On Linux, PRIO_PROCESS with who = 0 is the calling thread alone (each thread has its
        // own nice value). Failing leaves the thread at normal priority, which is only slower.
        // SAFETY: setpriority takes plain integers and touches no memory of ours.
        let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn background_threads_run_at_a_lower_priority_and_others_do_not() {
        let nice = || {
            // SAFETY: as above; getpriority reads the calling thread's nice value.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
        };
        let before = nice();
        let rt = super::background_runtime().unwrap();
        let inside = rt.block_on(async { tokio::spawn(async move { nice() }).await.unwrap() });
        assert_eq!(inside, (before + super::NICE).min(19));
        assert_eq!(nice(), before);
    }
}
