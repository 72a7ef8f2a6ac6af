//! Integration tests of the query engine over a real store (one test binary: DataFusion links
//! slowly).

mod data;
mod differential;
mod examples;
mod functions;
mod golden;
mod patterns;
mod plans;
mod segments;
mod semantics;
mod service;
mod support;
