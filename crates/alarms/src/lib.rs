//! kinsight-alarms (skeleton)
