//! nudge-aws's integration tests, one binary: the adapters and the four handlers against a
//! real moto server on loopback ([`support`] starts one per test process), and the tests
//! that need nothing but the crate's public API. Unit tests that need a module's private
//! items stay inline in `src/`; what these tests need beyond the public API is in
//! `nudge_aws::test_access` (the crate's `testing` feature).

mod dynamodb;
mod eventbridge;
mod lambda;
mod ses;
mod support;
