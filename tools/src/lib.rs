//! Shared code of the vxswitch tools.
#![deny(unsafe_code)]

pub mod bench;
pub mod ctl;
pub mod lab;
