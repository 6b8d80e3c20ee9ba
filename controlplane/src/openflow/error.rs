//! OpenFlow errors: what goes back to the peer as an OFPT_ERROR message.

use std::fmt;

/// Error types (OpenFlow 1.3/1.4 `ofp_error_type`).
pub mod kind {
    pub const HELLO_FAILED: u16 = 0;
    pub const BAD_REQUEST: u16 = 1;
    pub const BAD_ACTION: u16 = 2;
    pub const BAD_INSTRUCTION: u16 = 3;
    pub const BAD_MATCH: u16 = 4;
    pub const FLOW_MOD_FAILED: u16 = 5;
    pub const GROUP_MOD_FAILED: u16 = 6;
    pub const PORT_MOD_FAILED: u16 = 7;
    pub const TABLE_MOD_FAILED: u16 = 8;
    pub const QUEUE_OP_FAILED: u16 = 9;
    pub const SWITCH_CONFIG_FAILED: u16 = 10;
    pub const ROLE_REQUEST_FAILED: u16 = 11;
    pub const METER_MOD_FAILED: u16 = 12;
    pub const TABLE_FEATURES_FAILED: u16 = 13;
    pub const BAD_PROPERTY: u16 = 14;
    pub const ASYNC_CONFIG_FAILED: u16 = 15;
    pub const FLOW_MONITOR_FAILED: u16 = 16;
    pub const BUNDLE_FAILED: u16 = 17;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// An OpenFlow error: type and code as the specification numbers them, plus a message for
/// the switch's own log (never sent: OpenFlow carries the offending request's bytes instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfError {
    pub kind: u16,
    pub code: u16,
    pub detail: String,
}

impl OfError {
    pub fn new(kind: u16, code: u16, detail: impl Into<String>) -> OfError {
        OfError {
            kind,
            code,
            detail: detail.into(),
        }
    }
    /// OFPBRC_BAD_LEN: a length field that does not fit the message.
    pub fn bad_len() -> OfError {
        OfError::new(kind::BAD_REQUEST, 6, "bad length")
    }
    /// OFPBRC_BAD_VERSION.
    pub fn bad_version() -> OfError {
        OfError::new(kind::BAD_REQUEST, 0, "unsupported version")
    }
    /// OFPBRC_BAD_TYPE.
    pub fn bad_type() -> OfError {
        OfError::new(kind::BAD_REQUEST, 1, "unsupported message type")
    }
    /// OFPBRC_BAD_MULTIPART.
    pub fn bad_multipart() -> OfError {
        OfError::new(kind::BAD_REQUEST, 2, "unsupported multipart type")
    }
    /// OFPBRC_BAD_EXPERIMENTER.
    pub fn bad_experimenter() -> OfError {
        OfError::new(kind::BAD_REQUEST, 3, "unsupported experimenter")
    }
    /// OFPBRC_BAD_EXP_TYPE.
    pub fn bad_exp_type() -> OfError {
        OfError::new(kind::BAD_REQUEST, 4, "unsupported experimenter type")
    }
    /// OFPBRC_BAD_TABLE_ID.
    pub fn bad_table_id() -> OfError {
        OfError::new(kind::BAD_REQUEST, 9, "bad table id")
    }
    /// OFPBRC_BAD_PORT.
    pub fn bad_port() -> OfError {
        OfError::new(kind::BAD_REQUEST, 11, "bad port")
    }
    /// OFPFMFC_OVERLAP: check_overlap found an overlapping flow.
    pub fn overlap() -> OfError {
        OfError::new(kind::FLOW_MOD_FAILED, 3, "overlapping flow")
    }
    /// OFPFMFC_BAD_TABLE_ID.
    pub fn flow_mod_bad_table() -> OfError {
        OfError::new(kind::FLOW_MOD_FAILED, 2, "bad table id")
    }
    /// OFPFMFC_TABLE_FULL.
    pub fn table_full() -> OfError {
        OfError::new(kind::FLOW_MOD_FAILED, 1, "table full")
    }
    /// OFPGMFC_GROUP_EXISTS.
    pub fn group_exists() -> OfError {
        OfError::new(kind::GROUP_MOD_FAILED, 0, "group exists")
    }
    /// OFPGMFC_UNKNOWN_GROUP.
    pub fn unknown_group() -> OfError {
        OfError::new(kind::GROUP_MOD_FAILED, 8, "unknown group")
    }
    /// OFPBMC_BAD_FIELD (unsupported match field).
    pub fn bad_field(detail: impl Into<String>) -> OfError {
        OfError::new(kind::BAD_MATCH, 6, detail)
    }
    /// OFPBAC_BAD_TYPE (unsupported action).
    pub fn bad_action(detail: impl Into<String>) -> OfError {
        OfError::new(kind::BAD_ACTION, 0, detail)
    }
}

impl fmt::Display for OfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OpenFlow error type {} code {}: {}",
            self.kind, self.code, self.detail
        )
    }
}

impl std::error::Error for OfError {}
