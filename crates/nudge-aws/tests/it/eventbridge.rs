//! The EventBridge bus.

mod on_moto;
