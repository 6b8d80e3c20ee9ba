//! vxagent: reads the node's desired state from a TOML file and reconciles vxswitchd with it.
