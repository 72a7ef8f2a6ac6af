//! kinsight-agent (skeleton)
