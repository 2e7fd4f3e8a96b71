//! End-to-end tests: each starts the real `enclave` binary (see `enclave-testkit`) and talks to
//! it over HTTPS on loopback, through the API, the CLI and the console.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod api;
mod audit;
mod audit_console;
mod auth;
mod backup;
mod cli;
mod common;
mod console;
mod console_jobs;
mod console_secrets;
mod identity;
mod jobs;
mod mfa;
mod notebook_subdomain;
mod notebooks;
mod passkeys;
mod policy;
mod scim;
mod secrets;
mod serve;
mod trail;

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_enclave");
