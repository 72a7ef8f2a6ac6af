//! kinsight-metrics (skeleton)
