//! Integration tests of kinsight-alarms: the state machine against the documented examples,
//! the service with an injected clock over a real metric store, and notifications received
//! by real local HTTP servers.

mod egress;
mod end_to_end;
mod promql;
mod receiver;
mod service;
mod state_machine;
