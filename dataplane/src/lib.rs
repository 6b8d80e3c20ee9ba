//! The vxswitch dataplane.
//!
//! - [`wire`]: zero-copy views of Ethernet, ARP, IPv4/6, ICMP, UDP, TCP and VXLAN;
//! - [`fib`]: the forwarding tables, published read-copy-update;
//! - [`pipeline`]: what happens to a frame (switch, route, encapsulate, decapsulate), no I/O;
//! - [`io`]: TAP devices, UDP sockets, namespaces — the only module with `unsafe`;
//! - [`worker`]: the per-core loop; [`switch`]: the control side; [`server`]: the socket.
#![deny(unsafe_code)]

pub mod buf;
pub mod counters;
pub mod fib;
pub mod io;
pub mod pipeline;
pub mod sample;
pub mod server;
pub mod switch;
pub mod wire;
pub mod worker;
