//! Placeholder so the workspace loads while the gateway crate is written.
