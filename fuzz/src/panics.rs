//! What counts as a crash. libfuzzer-sys aborts on every panic, also one caught further up;
//! but the template module runs the Liquid engine under `catch_unwind` on purpose and turns
//! its panics (integer overflow in a math filter, ...) into errors (`nudge-core`'s
//! `template/mod.rs`). Targets that reach Liquid run under [`contained`]: a panic caught inside
//! the code under test is that code's business; one that escapes it is a crash, reported with
//! its message and place.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// The message and place of the latest panic on this thread.
    static LAST: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `f`; aborts (a crash for libFuzzer) if a panic escapes it.
pub fn contained<R>(f: impl FnOnce() -> R) -> R {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // Quiet: a caught panic prints nothing (Liquid's can be frequent), and the one that
        // escapes is printed below.
        panic::set_hook(Box::new(|info| {
            LAST.with(|last| *last.borrow_mut() = info.to_string());
        }));
    });
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            LAST.with(|last| eprintln!("panic escaped the code under test: {}", last.borrow()));
            std::process::abort();
        }
    }
}
