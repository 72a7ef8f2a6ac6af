//! kinsight-query (skeleton)
