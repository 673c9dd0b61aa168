//! tekton-results-logs: serves Tekton TaskRun and PipelineRun logs from the log
//! store a cluster already forwards pod logs to, over upstream-compatible
//! gRPC and REST APIs. See `ARCHITECTURE.md` for the data flow.

pub mod api;
pub mod auth;
pub mod backend;
pub mod config;
pub mod pipeline;
pub mod proto;
pub mod record;
pub mod run;
pub mod telemetry;
pub mod timestamp;
pub mod watched;
