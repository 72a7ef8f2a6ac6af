//! kinsight-store (skeleton)
