//! Issue 13, "safe to expose": credentials, destination policy, limits,
//! strict input and the wire gaps, each proved through the real binary.

#[path = "../common/mod.rs"]
mod common;

mod credentials;
mod destinations;
mod input;
mod limits;
mod wire;
