//! Tests with real runc sandboxes (root required, as in CI; runc must be installed): the
//! driver (`runc`), project networks (`net`) and the escape probe (`escape`), one binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
mod escape;
mod net;
mod runc;
