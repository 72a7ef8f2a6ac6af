//! Integration tests of the store against a real filesystem (and a real SeaweedFS for the S3
//! path). One test binary so the datafusion tree links once.

mod cardinality;
mod catalogue;
mod compaction;
mod dedup;
mod durability;
mod observer;
mod reads;
mod replicas;
mod retention;
mod s3;
mod seaweed;
mod segments;
mod support;
