//! Fake provider servers, one per provider, each as faithful to the real one
//! as its module doc says, with tests that replay the real provider's
//! captured answers against it.

pub mod loki;
/// Replays of real Loki captures (reference `loki-captures/`) against the
/// fake, a paging property test and tail tests.
#[cfg(test)]
mod loki_tests;
