//! What the fuzz targets share: the example rule sets, compiled once; the rule about panics;
//! a scratch folder per process; a fixed clock; and the reading of an input as an HTTP
//! request. The targets are in `fuzz_targets/`, one per parser; `docs/reliability.md` says
//! what each covers and how to run them.

pub mod clock;
pub mod panics;
pub mod request;
pub mod rule_sets;
pub mod scratch;
