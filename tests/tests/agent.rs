//! vxagent against a real vxswitchd: file changes are pushed as differences, admin objects
//! survive agent pushes, a bad file changes nothing, and the switch outlives the agent.

use std::net::Ipv4Addr;
use std::time::Duration;

use controlplane::proto::{Change, Owner, RemoteNode};
use vxswitch_e2e::*;

#[test]
fn agent_pushes_file_changes_keeps_admin_objects_and_refuses_bad_files() {
    let lab = lab(LabSpec {
        name: unique_name("agt"),
        nodes: 2,
        pods: 1,
        ipv6: false,
        ..LabSpec::default()
    });
    let n1 = lab.node("n1").unwrap().clone();
    let file = n1.dir.join("agent.toml");
    let mut ctl = lab.ctl("n1").unwrap();

    // An admin adds a node of their own.
    let admin_node = RemoteNode {
        name: "n9".into(),
        vtep: "198.51.100.9".parse().unwrap(),
        vtep_mac: "02:f1:00:00:00:09".parse().unwrap(),
        subnet: "10.1.9.0/24".parse().unwrap(),
        subnet6: None,
    };
    ctl.apply(Owner::Admin, None, vec![Change::AddNode(admin_node)])
        .unwrap();

    // A new pod appears in the agent's file: a namespace named like the lab's own, so that
    // the lab's teardown removes it too.
    let extra_ns = format!("{}-n1p9", lab.name);
    let (ok, out) = run_bounded(
        std::process::Command::new("ip").args(["netns", "add", &extra_ns]),
        Duration::from_secs(5),
    );
    assert!(ok, "{out}");
    let _ = run_bounded(
        std::process::Command::new("ip").args(["-n", &extra_ns, "link", "set", "lo", "up"]),
        Duration::from_secs(5),
    );
    let original = std::fs::read_to_string(&file).unwrap();
    let with_pod = format!(
        "{original}\n[[pods]]\nname = \"n1p9\"\nnetns = \"{extra_ns}\"\nmac = \"0a:58:0a:01:01:0a\"\nip = \"10.1.1.10\"\n"
    );
    std::fs::write(&file, &with_pod).unwrap();
    let up = wait_until(Duration::from_secs(15), || {
        ctl.state()
            .unwrap()
            .ports
            .iter()
            .any(|p| p.name == "n1p9" && p.status == "up")
    });
    assert!(
        up,
        "the agent pushed the new pod: {:?}",
        ctl.state().unwrap().ports
    );
    let (ok, out) = ping(&lab, "n2p1", Ipv4Addr::new(10, 1, 1, 10), 3, &[]);
    assert!(ok, "the new pod is reachable across nodes:\n{out}");
    let state = ctl.state().unwrap();
    let n9 = state
        .nodes
        .iter()
        .find(|n| n.spec.name == "n9")
        .expect("admin node survives agent pushes");
    assert_eq!(n9.owner, Owner::Admin);

    // A broken file is refused with file:line and nothing changes.
    let version = state.table_version;
    std::fs::write(
        &file,
        format!("{with_pod}\n[[pods]]\nname = \"broken\"\nmac = \"zz:zz\"\n"),
    )
    .unwrap();
    let log = n1.dir.join("vxagent.log");
    let complained = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("agent.toml:")
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        complained,
        "the agent names file:line of the error:\n{text}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        ctl.state().unwrap().table_version,
        version,
        "a bad file changes nothing"
    );

    // The switch keeps forwarding without its agent.
    let pid = lab.agent_pid("n1").expect("agent pid");
    // SAFETY: kill(2) on the agent that this lab started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(300));
    let (ok, out) = ping(&lab, "n1p1", Ipv4Addr::new(10, 1, 2, 2), 3, &[]);
    assert!(ok, "forwarding goes on without the agent:\n{out}");
}
