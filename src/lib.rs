//! tekton-results-logs: serves Tekton TaskRun and PipelineRun logs from the log
//! store a cluster already forwards pod logs to. See `ARCHITECTURE.md`.

pub mod proto;
