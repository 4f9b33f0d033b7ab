//! smtpscope's commands as a library: the binary (`main.rs`) turns arguments into settings and
//! calls these modules; the fuzz targets (`fuzz/`) reach the syslog framing, the policy
//! protocol and the configuration loader through them.

pub mod abuse;
pub mod cluster;
pub mod config;
pub mod ecs;
pub mod html;
pub mod input;
pub mod partitioned;
pub mod pipeline;
pub mod report;
pub mod seen;
pub mod serve;
pub mod sflow_cmd;
pub mod sim;
