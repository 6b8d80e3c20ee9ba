//! OpenFlow 1.3 and 1.4, with the Nicira and ONF extensions ovs-ofctl uses: views over
//! message bytes and owned reprs, in the style of `dataplane/src/wire`.
//!
//! - [`header`]: the 8-byte header every message starts with, and the message types.
//! - [`error`]: OpenFlow error messages (type, code) as [`OfError`].
//! - [`oxm`]: matches, actions, instructions; [`flow_mod`], [`flow_stats`], [`group`],
//!   [`packet_out`]: the messages that carry them.
//!
//! Flow matches (OXM, NXM fields as experimenter OXMs), actions and instructions decode into
//! the same [`crate::flow`] reprs `vxctl` uses, so one flow store serves both.

pub mod actions;
pub mod error;
pub mod fields;
pub mod flow_mod;
pub mod flow_stats;
pub mod group;
pub mod header;
pub mod instructions;
pub mod oxm;
pub mod packet_out;

pub use error::OfError;
pub use header::{Header, HeaderRepr, MsgType, HEADER_LEN};

/// OpenFlow 1.3's wire version.
pub const OFP13: u8 = 0x04;
/// OpenFlow 1.4's wire version.
pub const OFP14: u8 = 0x05;
/// Versions this switch speaks, lowest first.
pub const VERSIONS: [u8; 2] = [OFP13, OFP14];

/// The Nicira experimenter id (NXM fields, Nicira actions and messages).
pub const NX_VENDOR_ID: u32 = 0x0000_2320;
/// The ONF experimenter id (bundles in OpenFlow 1.3).
pub const ONF_VENDOR_ID: u32 = 0x4f4e_4600;

/// Special port numbers (OpenFlow 1.1+ numbering, 32 bits on the wire).
pub mod port {
    pub const MAX: u32 = 0xffff_ff00;
    pub const IN_PORT: u32 = 0xffff_fff8;
    pub const TABLE: u32 = 0xffff_fff9;
    pub const NORMAL: u32 = 0xffff_fffa;
    pub const FLOOD: u32 = 0xffff_fffb;
    pub const ALL: u32 = 0xffff_fffc;
    pub const CONTROLLER: u32 = 0xffff_fffd;
    pub const LOCAL: u32 = 0xffff_fffe;
    pub const ANY: u32 = 0xffff_ffff;
}

/// Special group ids.
pub mod group_id {
    pub const MAX: u32 = 0xffff_ff00;
    pub const ALL: u32 = 0xffff_fffc;
    pub const ANY: u32 = 0xffff_ffff;
}

/// Table number meaning "every table" in requests and deletes.
pub const TABLE_ALL: u8 = 0xff;
/// buffer_id meaning "no buffer".
pub const NO_BUFFER: u32 = 0xffff_ffff;
