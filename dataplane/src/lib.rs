//! The vxswitch dataplane.
#![deny(unsafe_code)]

pub mod wire;
