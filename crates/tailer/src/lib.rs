//! kinsight-tailer (skeleton)
