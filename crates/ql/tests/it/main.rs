//! Integration tests of kinsight-ql.
