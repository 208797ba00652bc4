//! schedule-delay.

mod on_moto;
mod timer_queue;
