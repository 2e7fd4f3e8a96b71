//! Envelope benchmark (placeholder).
fn main() {}
