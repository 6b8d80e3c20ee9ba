//! The vxswitch dataplane.
//!
//! - [`wire`]: zero-copy views of Ethernet, ARP, IPv4/6, ICMP, UDP, TCP and VXLAN;
//! - [`fib`]: the forwarding tables, two copies (left-right): wait-free readers, per-entry updates;
//! - [`pipeline`]: what happens to a frame (switch, route, encapsulate, decapsulate), no I/O;
//! - [`io`]: TAP devices, UDP sockets, namespaces — the only module with `unsafe`;
//! - [`worker`]: the per-core loop; [`switch`]: the control side; [`server`]: the socket.
#![deny(unsafe_code)]

pub mod buf;
pub mod capture;
pub mod clock;
pub mod counters;
pub mod fib;
pub mod flow;
pub mod flowstore;
#[doc(hidden)]
pub mod fuzzing;
pub mod io;
pub mod learn;
pub mod metrics;
pub mod offload;
pub mod openflow;
pub mod pipeline;
pub mod pmtu;
pub mod sample;
pub mod server;
pub mod switch;
pub mod trace;
pub mod unixctl;
pub mod wire;
pub mod worker;
