//! kinsight-server (skeleton)
