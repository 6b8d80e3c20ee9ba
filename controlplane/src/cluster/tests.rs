//! The pure parts of cluster mode: flannel's config and lease JSON, keys, subnet.env, the pick.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use super::lease::{self, Lease, LeaseAttrs, SubnetKey};
use super::network::NetworkConfig;
use super::subnet_env::{previous_subnet, write_atomic, SubnetEnv};

#[test]
fn config_defaults_follow_flannel() {
    let n = NetworkConfig::parse(
        r#"{"Network": "10.1.0.0/16", "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472}}"#,
    )
    .unwrap();
    assert_eq!(n.network.to_string(), "10.1.0.0/16");
    assert_eq!(n.subnet_len, 24);
    assert_eq!(n.subnet_min, Ipv4Addr::new(10, 1, 1, 0));
    assert_eq!(n.subnet_max, Ipv4Addr::new(10, 1, 255, 0));
    assert_eq!(n.subnet_count(), 255);
    assert_eq!(n.backend.vni, 1);
    assert_eq!(n.backend.port, Some(8472));
    assert!(n.ipv6.is_none());

    let small =
        NetworkConfig::parse(r#"{"Network":"10.9.0.0/26","Backend":{"Type":"vxlan"}}"#).unwrap();
    assert_eq!(small.subnet_len, 28);
    assert_eq!(small.subnet_count(), 3);

    // Go's decoder matches keys case-insensitively and ignores unknown ones.
    let lower = NetworkConfig::parse(
        r#"{"network":"10.1.0.0/16","subnetlen":25,"backend":{"type":"vxlan","vni":7},"x":1}"#,
    )
    .unwrap();
    assert_eq!(lower.subnet_len, 25);
    assert_eq!(lower.backend.vni, 7);
}

#[test]
fn config_ipv6_fields() {
    let n = NetworkConfig::parse(
        r#"{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:10:1::/48",
            "Backend":{"Type":"vxlan"}}"#,
    )
    .unwrap();
    let v6 = n.ipv6.unwrap();
    assert_eq!(v6.subnet_len, 64);
    assert_eq!(v6.subnet_min.to_string(), "fd00:10:1:1::");
    assert_eq!(v6.subnet(0).unwrap().to_string(), "fd00:10:1:1::/64");
}

#[test]
fn config_errors_name_the_key() {
    let cases = [
        ("{", "(document)"),
        (r#"{"Backend":{"Type":"vxlan"}}"#, "Network"),
        (
            r#"{"Network":"10.1.0.1/16","Backend":{"Type":"vxlan"}}"#,
            "Network",
        ),
        (
            r#"{"Network":"10.1.0.0/16","SubnetLen":17,"Backend":{"Type":"vxlan"}}"#,
            "SubnetLen",
        ),
        (
            r#"{"Network":"10.1.0.0/16","SubnetLen":"24","Backend":{"Type":"vxlan"}}"#,
            "SubnetLen",
        ),
        (
            r#"{"Network":"10.1.0.0/16","SubnetMin":"10.2.0.0","Backend":{"Type":"vxlan"}}"#,
            "SubnetMin",
        ),
        (
            r#"{"Network":"10.1.0.0/16","SubnetMax":"10.1.3.7","Backend":{"Type":"vxlan"}}"#,
            "SubnetMax",
        ),
        (r#"{"Network":"10.1.0.0/16"}"#, "Backend"),
        (
            r#"{"Network":"10.1.0.0/16","Backend":{"Type":"host-gw"}}"#,
            "Backend.Type",
        ),
        (
            r#"{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","VNI":"x"}}"#,
            "Backend.VNI",
        ),
        (
            r#"{"Network":"10.1.0.0/16","EnableIPv6":true,"Backend":{"Type":"vxlan"}}"#,
            "IPv6Network",
        ),
    ];
    for (text, key) in cases {
        let e = NetworkConfig::parse(text).unwrap_err();
        assert_eq!(e.key, key, "{text}: {e}");
    }
}

#[test]
fn subnet_keys_round_trip_flannel_format() {
    let k = SubnetKey::parse("/coreos.com/network/subnets/10.1.2.0-24").unwrap();
    assert_eq!(k.subnet.to_string(), "10.1.2.0/24");
    assert_eq!(k.to_key(), "10.1.2.0-24");
    assert_eq!(k.node_name(), "10.1.2.0-24");
    let k6 = SubnetKey::parse("/x/subnets/10.1.2.0-24&fd00:10:1:2::-64").unwrap();
    assert_eq!(k6.subnet6.unwrap().to_string(), "fd00:10:1:2::/64");
    assert_eq!(k6.to_key(), "10.1.2.0-24&fd00:10:1:2::-64");
    assert!(SubnetKey::parse("/x/subnets/garbage").is_none());
    assert!(SubnetKey::parse("/x/subnets/10.1.2.1-24").is_none());
}

#[test]
fn flannel_lease_json_parses_and_ours_matches_it() {
    // As flannel's vxlan backend writes it (PublicIPv6 null, an unknown field added).
    let flannel = br#"{"PublicIP":"198.51.100.7","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:aa:bb:cc:dd:07"},"Extra":true}"#;
    let l = Lease::parse("/coreos.com/network/subnets/10.1.7.0-24", flannel).unwrap();
    let node = l.to_remote().unwrap();
    assert_eq!(node.vtep.to_string(), "198.51.100.7");
    assert_eq!(node.vtep_mac.to_string(), "02:aa:bb:cc:dd:07");
    assert_eq!(node.subnet.to_string(), "10.1.7.0/24");

    let ours = LeaseAttrs::vxlan(
        Ipv4Addr::new(198, 51, 100, 2),
        1,
        "02:f1:00:00:00:02".parse().unwrap(),
    );
    assert_eq!(
        ours.to_json(),
        r#"{"PublicIP":"198.51.100.2","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:f1:00:00:00:02"}}"#
    );

    let hostgw = br#"{"PublicIP":"198.51.100.8","BackendType":"host-gw"}"#;
    let l = Lease::parse("/p/subnets/10.1.8.0-24", hostgw).unwrap();
    assert!(l.to_remote().unwrap_err().contains("not vxlan"));
    assert!(Lease::parse("/p/subnets/10.1.8.0-24", b"{").is_err());
}

#[test]
fn subnet_env_as_flannel_writes_it() {
    let env = SubnetEnv {
        network: "10.1.0.0/16".parse().unwrap(),
        subnet: "10.1.2.0/24".parse().unwrap(),
        ipv6: None,
        mtu: 1450,
        ipmasq: false,
    };
    let text = env.render();
    assert_eq!(
        text,
        "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.2.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"
    );
    let dir = std::env::temp_dir().join(format!("vxagent-env-{}", std::process::id()));
    let path = dir.join("run/flannel/subnet.env");
    write_atomic(&path, &text).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let (prev, prev6) = previous_subnet(&path).unwrap();
    assert_eq!(prev.to_string(), "10.1.2.0/24");
    assert!(prev6.is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pick_finds_the_free_subnets_only() {
    let mut seed = 42;
    let taken: HashSet<u128> = (0..255).filter(|&i| i != 17).collect();
    assert_eq!(lease::pick(255, &taken, &mut seed), Some(17));
    let full: HashSet<u128> = (0..255).collect();
    assert_eq!(lease::pick(255, &full, &mut seed), None);
    let huge = lease::pick(1 << 40, &HashSet::new(), &mut seed).unwrap();
    assert!(huge < 1 << 40);
}
