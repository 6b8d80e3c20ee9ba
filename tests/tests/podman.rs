//! A real container runtime drives vxswitch-cni: Debian's podman (4.x, CNI backend) runs a
//! container on a vxswitch network, the container pings a pod on another node, and removing
//! the container has podman call DEL, which removes the port from vxswitchd.
//!
//! Everything podman uses is the test's own: its configuration (`CONTAINERS_CONF`), the CNI
//! configuration and plugin directories, storage (`--root`, `--runroot`, `--tmpdir`), and a
//! busybox root file system (Debian's busybox-static), so nothing is pulled. The network is
//! named, and is also podman's default network, so podman never builds its own bridge in the
//! host's namespace.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use vxswitch_e2e::*;

/// podman with the test's own configuration and storage; on drop it removes the container,
/// unmounts whatever podman left mounted under its directory and removes the directory.
struct Podman {
    dir: PathBuf,
    container: String,
}

impl Podman {
    fn command(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .arg("--cni-config-dir")
            .arg(self.dir.join("net.d"));
        cmd
    }

    fn run(&self, args: &[&str], limit: Duration) -> (bool, String) {
        let mut cmd = self.command();
        cmd.args(args);
        run_bounded(&mut cmd, limit)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-f", &self.container], Duration::from_secs(60));
        // Mounts podman may have left (shm, the root file system) go before the directory.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut left: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| Path::new(m).starts_with(&self.dir))
            .collect();
        left.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in left {
            let _ = run_bounded(
                Command::new("umount").args(["-l", m]),
                Duration::from_secs(10),
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A root file system of Debian's static busybox and the applets the container uses.
fn busybox_rootfs(dir: &Path) -> PathBuf {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing: install Debian's busybox-static"
    );
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "run"] {
        std::fs::create_dir_all(root.join(d)).expect("rootfs dir");
    }
    std::fs::copy(busybox, root.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "ping", "ip", "cat", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).expect("symlink");
    }
    root
}

#[test]
fn podman_runs_a_container_on_a_vxswitch_network_that_reaches_another_node() {
    let lab = lab(LabSpec {
        name: unique_name("pod"),
        nodes: 2,
        pods: 1,
        ipv6: false,
        ..LabSpec::default()
    });
    let dir = std::env::temp_dir().join(format!("vxpodman-{}", lab.name));
    let _ = std::fs::remove_dir_all(&dir);
    let net = format!("vxnet-{}", lab.name);
    let podman = Podman {
        dir: dir.clone(),
        container: format!("vxc-{}", lab.name),
    };
    for d in ["root", "runroot", "tmp", "net.d", "plugins", "ipam"] {
        std::fs::create_dir_all(dir.join(d)).expect("podman dirs");
    }
    let bin = tools::lab::vxswitch::BinSearch::from_env()
        .find("vxswitch-cni")
        .expect("vxswitch-cni binary (cargo build --release)");
    std::os::unix::fs::symlink(&bin, dir.join("plugins/vxswitch")).expect("plugin");
    let conf = format!(
        "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\", \"/usr/lib/cni\"]\n\
         network_config_dir = \"{}\"\ndefault_network = \"{net}\"\n\
         [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\nruntime = \"runc\"\n",
        dir.join("plugins").display(),
        dir.join("net.d").display(),
    );
    std::fs::write(dir.join("containers.conf"), conf).expect("containers.conf");
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": net,
        "plugins": [{
            "type": "vxswitch",
            "socket": lab.socket("n1").unwrap(),
            "ipam": {"type": "host-local", "dataDir": dir.join("ipam"),
                     "rangeStart": "10.1.1.200"}
        }]
    });
    std::fs::write(
        dir.join("net.d").join(format!("{net}.conflist")),
        serde_json::to_vec_pretty(&conflist).unwrap(),
    )
    .expect("conflist");
    let rootfs = busybox_rootfs(&dir);

    let (ok, out) = podman.run(&["network", "ls"], Duration::from_secs(60));
    assert!(ok && out.contains(&net), "podman sees the network:\n{out}");

    let rootfs_arg = rootfs.display().to_string();
    let (ok, out) = podman.run(
        &[
            "run",
            "--name",
            &podman.container,
            "--runtime",
            "runc",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--network",
            &net,
            "--rootfs",
            &rootfs_arg,
            "/bin/sh",
            "-c",
            "ip -4 addr show eth0 && ping -c 3 -W 2 10.1.2.2",
        ],
        Duration::from_secs(120),
    );
    eprintln!("podman run:\n{out}");
    assert!(ok, "the container pings a pod on the other node:\n{out}");
    assert!(
        out.contains("10.1.1.200/24"),
        "host-local's address:\n{out}"
    );
    assert!(out.contains("3 packets received"), "{out}");

    // Removing the container has podman call DEL: the port leaves vxswitchd.
    let (ok, out) = podman.run(&["rm", "-f", &podman.container], Duration::from_secs(60));
    assert!(ok, "podman rm:\n{out}");
    let gone = wait_until(Duration::from_secs(10), || {
        let state = lab.ctl("n1").expect("control").state().expect("state");
        !state.ports.iter().any(|p| {
            p.spec
                .as_ref()
                .is_some_and(|s| s.ip.to_string() == "10.1.1.200")
        })
    });
    assert!(gone, "the container's port is gone from vxswitchd");
    assert!(
        !dir.join("ipam").join(&net).join("10.1.1.200").exists(),
        "the address is released"
    );
    // podman built no bridge of its own in the host's namespace.
    let (exists, _) = run_bounded(
        Command::new("ip").args(["link", "show", "cni-podman0"]),
        Duration::from_secs(5),
    );
    assert!(!exists, "podman created cni-podman0");
    drop(podman);
}
