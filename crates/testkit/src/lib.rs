//! Test and benchmark fixtures: the real `qstash` binary on a random port,
//! and a local HTTP sink that records what it receives and answers as a
//! test scripts it.

pub mod backend;
pub mod cluster;
mod server;
mod sink;

pub use server::{dev_user, run_to_exit, DevUser, Server};
pub use sink::{Received, Reply, Sink};
