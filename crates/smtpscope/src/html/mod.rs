//! HTML output: the self-contained report of `analyze --format html`, and the figure and
//! evidence renderers the dashboard reuses.
//!
//! Templates are `maud` macros (checked at compile time, every
//! interpolation escaped); charts are inline SVG drawn by [`chart`] (no plotting crate: see the
//! crate README for why).

pub mod chart;
pub mod evidence;
pub mod figures;
pub mod report;
pub mod sflow;
