//! Network namespaces by name, through `ip netns`.

use super::{sh, LabError};

/// Every named namespace (`ip netns list`), without the `(id: N)` decoration.
pub fn list() -> Result<Vec<String>, LabError> {
    let out = sh::ip(None, &["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// The processes whose network namespace is `ns` (`ip netns pids NS`).
pub fn pids(ns: &str) -> Result<Vec<u32>, LabError> {
    let out = sh::ip(None, &["netns", "pids", ns])?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Creates a namespace and brings its loopback up.
pub fn add(ns: &str) -> Result<(), LabError> {
    sh::ip(None, &["netns", "add", ns])?;
    sh::ip(Some(ns), &["link", "set", "lo", "up"]).map(drop)
}

/// Removes a namespace name; the kernel frees the namespace, and every device in it, once the
/// last process inside has gone.
pub fn del(ns: &str) -> Result<(), LabError> {
    sh::ip(None, &["netns", "del", ns]).map(drop)
}
