//! What the operator sees: log lines, the state document, `status` and `health`, and
//! the metrics endpoint.

pub mod logging;
pub mod metrics;
pub mod statefile;
pub mod status;
