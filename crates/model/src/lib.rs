//! kinsight-model: the shared vocabulary of every kinsight crate.
//!
//! What lives here: the log event envelope that agents ship and the server stores
//! ([`event`]), the names and limits of log groups, streams and batches ([`names`],
//! [`limits`]), the Container Insights metric catalogue — names, units and the EMF dimension
//! sets of the reference's section 2.4 ([`catalogue`]), the EMF directive itself with
//! extraction of datapoints ([`emf`]), the agent configuration in the seed's JSON shape
//! ([`config`]), and the one grammar of durations and times on the command line
//! ([`duration`]).
//!
//! What does not: any I/O — except [`durable`], the one helper that replaces persisted files
//! atomically and durably, written once for every crate that keeps state on disk —, any async
//! runtime, any heavy dependency. Every other crate depends on this one, so it must stay cheap
//! to build.

pub mod catalogue;
pub mod config;
pub mod durable;
pub mod duration;
pub mod emf;
pub mod event;
pub mod hash;
pub mod json;
pub mod limits;
pub mod names;
pub mod size;

pub use event::LogEvent;
