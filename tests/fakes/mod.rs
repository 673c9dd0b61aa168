//! Fake provider servers, one per provider, and a fake Kubernetes API server,
//! each as faithful to the real one as its module doc says, with tests that
//! check it against the real server's captured or documented answers.

pub mod kube;
/// The fake Kubernetes API server's reviews, errors and failure modes, checked against the
/// real server's documented answers.
#[cfg(test)]
mod kube_tests;
pub mod loki;
/// Replays of real Loki captures (reference `loki-captures/`) against the
/// fake, a paging property test and tail tests.
#[cfg(test)]
mod loki_tests;
