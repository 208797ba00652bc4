//! The process's allocator, and how the batch commands tune it.

/// mimalloc rather than glibc's malloc: under `nudge serve`'s load the allocator was about a
/// sixth of the process's CPU, with threads waiting on glibc's arena locks (BENCHMARKS.md,
/// "Serve load test").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (v3, the version linked); the sys
/// crate names the options around it but not this one.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps memory freed by the process for its next allocations instead of handing it back to
/// the OS a second later (mimalloc's default). A replay frees on one thread what another
/// allocated, all the time: returned pages came back as fresh ones, each zeroed by the kernel,
/// about a tenth of `nudge report`'s CPU (BENCHMARKS.md). The process still holds no more
/// than its peak, which is bounded by the users' state; `nudge serve` keeps the default.
pub fn keep_freed_memory() {
    // SAFETY: sets an option's value; mimalloc reads options atomically at each use.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_the_option_set() {
        // SAFETY: reads an option's value.
        let delay = || unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(delay(), 1000, "mimalloc's default purge delay (ms)");
        }
        keep_freed_memory();
        assert_eq!(delay(), -1);
        // The option after it is where the sys crate says, so the enum has not moved.
        assert_eq!(libmimalloc_sys::mi_option_use_numa_nodes - 1, PURGE_DELAY);
    }
}
