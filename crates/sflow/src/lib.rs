//! sflow
