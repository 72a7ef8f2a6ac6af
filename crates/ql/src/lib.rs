//! kinsight-ql (skeleton)
