//! schedule-delay.

mod on_moto;
