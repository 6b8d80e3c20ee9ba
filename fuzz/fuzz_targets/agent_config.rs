//! Arbitrary text as vxagent's TOML file: an error naming the line, or a configuration whose
//! batch and flows the agent can compute (see `controlplane::fuzzing::agent_config`).
//!
//! Run from `fuzz/`: `cargo +nightly fuzz run agent_config`. The saved corpus in `corpus/agent_config/` is
//! replayed by the normal test suite.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    controlplane::fuzzing::agent_config(data);
});
