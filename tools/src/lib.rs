//! Shared code of the vxswitch tools.
#![deny(unsafe_code)]
