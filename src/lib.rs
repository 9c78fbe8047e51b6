//! dbsync: copy the result of a MySQL query into SQLite or MySQL, replacing the target
//! table atomically. `run` turns the command line and the config into a plan and carries
//! it out; everything below it works on domain types only.

pub mod cli;
pub mod config;
pub mod connect;
pub mod error;
pub mod fence;
pub mod freshness;
pub mod incremental;
pub mod interrupt;
pub mod logfile;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod retry;
mod run;
pub mod source;
pub mod target;
#[cfg(test)]
pub mod testing;
pub mod transform;
pub mod verify;

pub use run::run;
