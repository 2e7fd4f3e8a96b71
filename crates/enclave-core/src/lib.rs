//! Enclave's domain: the vocabulary every other crate speaks, and the rules that need no IO.
//!
//! Invariants: nothing in this crate performs IO or reads the clock. Time arrives as a
//! [`Timestamp`] argument; randomness arrives as bytes from the caller.

pub mod access;
pub mod audit;
pub mod authz;
pub mod environments;
pub mod error;
pub mod identity;
pub mod jobs;
pub mod mfa;
pub mod model;
pub mod names;
pub mod notebook_hosts;
pub mod notebooks;
pub mod password;
pub mod secrets;
pub mod session;
pub mod throttle;
pub mod time;

pub use error::{Error, ErrorCode, Result};
pub use time::{Clock, Timestamp};
