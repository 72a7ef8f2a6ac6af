//! Integration tests of kinsight-ql: one binary, one module per concern.

mod commands;
mod errors;
mod examples;
mod functions;
mod operators;
mod pipeline;
mod props;
mod support;
