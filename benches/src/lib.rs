//! The servers `session-bench` measures, as a library so that the engine micro-benchmark
//! (`benches/engine.rs`) runs the very same apps in-process.

pub mod servers;
pub mod system;
