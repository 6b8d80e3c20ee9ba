//! Everything that talks to the kernel: TAP devices, UDP sockets, network namespaces.
//!
//! This is the one part of the dataplane that uses `unsafe`, each block with the reason it is
//! sound. Syscalls go through [`sys::cvt`], which turns -1 into `io::Error`.
#![allow(unsafe_code)]

pub mod netns;
pub mod sys;
pub mod tap;
pub mod tnl;
pub mod udp;
