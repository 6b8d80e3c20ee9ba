#!/bin/bash
# Regenerates the real-OVS reference of this directory: loads each GEN.flows into a real Open
# vSwitch (a private ovsdb-server and ovs-vswitchd, userspace datapath, in a network namespace
# of their own), saves `ovs-ofctl -O OpenFlow13 dump-flows br0 --no-stats --no-names` as
# GEN.dump (for sdn-4.x also, after sdn-4.x-egress.bundle, sdn-4.x-egress.dump and the
# dump-groups output sdn-4.x-egress.groups) and `ovs-appctl ofproto/trace br0 FLOW` of every case in cases.txt as
# traces/GEN-CASE.txt. Needs root and Debian's openvswitch-switch. Nothing outside the
# namespace and the temporary directory is touched; the daemons are stopped by their PIDs.
#
#   tests/data/openshift/reference.sh            # all generations
#   tests/data/openshift/reference.sh origin-3.6 # one
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
gens=${*:-sdn-2015 origin-3.6 sdn-4.x}
tmp=$(mktemp -d /tmp/osref.XXXXXX)
ns=osref$$
ip netns add "$ns"
export OVS_RUNDIR=$tmp OVS_DBDIR=$tmp OVS_LOGDIR=$tmp OVS_SYSCONFDIR=$tmp
cleanup() {
    for p in ovs-vswitchd ovsdb-server; do
        [ -f "$tmp/$p.pid" ] && kill "$(cat "$tmp/$p.pid")" 2>/dev/null || true
    done
    sleep 0.5
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
nsx() { ip netns exec "$ns" "$@"; }
ovsdb-tool create "$tmp/conf.db" /usr/share/openvswitch/vswitch.ovsschema
nsx ovsdb-server "$tmp/conf.db" --remote="punix:$tmp/db.sock" --pidfile="$tmp/ovsdb-server.pid" \
    --unixctl="$tmp/ovsdb-server.ctl" --log-file="$tmp/ovsdb-server.log" -vconsole:off --detach --no-chdir
vsctl() { ovs-vsctl --db="unix:$tmp/db.sock" --timeout=20 "$@"; }
vsctl --no-wait init
nsx ovs-vswitchd "unix:$tmp/db.sock" --pidfile="$tmp/ovs-vswitchd.pid" \
    --unixctl="$tmp/ovs-vswitchd.ctl" --log-file="$tmp/ovs-vswitchd.log" -vconsole:off --detach --no-chdir
ofctl() { ovs-ofctl -O OpenFlow13 "$@"; }
appctl() { ovs-appctl -t "$tmp/ovs-vswitchd.ctl" "$@"; }

trace() {
    grep -v '^#' "$here/cases.txt" | while read -r g case flow; do
        [ "$g" = "$1" ] || continue
        appctl ofproto/trace br0 "$flow" > "$here/traces/$g-$case.txt"
    done
}

for gen in $gens; do
    vsctl --if-exists del-br br0
    # As the generations' own set-up does: fail-mode secure, OpenFlow 1.3; userspace datapath.
    vsctl add-br br0 -- set bridge br0 datapath_type=netdev fail-mode=secure protocols=OpenFlow13
    vsctl add-port br0 vxlan0 -- set interface vxlan0 type=vxlan options:remote_ip=flow \
        options:key=flow ofport_request=1
    vsctl add-port br0 tun0 -- set interface tun0 type=internal ofport_request=2
    if [ "$gen" = sdn-2015 ]; then first=4; vsctl add-port br0 vovsbr -- set interface vovsbr \
        type=internal ofport_request=3; else first=3; fi
    for i in 0 1 2 3; do
        vsctl add-port br0 pod$((i + 2)) -- set interface pod$((i + 2)) type=internal \
            ofport_request=$((first + i))
    done
    ofctl add-flows br0 "$here/$gen.flows"
    ofctl dump-flows br0 --no-stats --no-names > "$here/$gen.dump"
    if [ "$gen" = sdn-4.x ]; then
        # The connection-tracking lines load into OVS too (checked, not part of the dump).
        ofctl add-flows br0 "$here/sdn-4.x-ct.flows"
        ofctl del-flows br0 --strict "table=0, priority=1000, ip, ct_state=-trk"
        ofctl del-flows br0 --strict "table=31, priority=250, ip, nw_dst=10.1.1.0/24, ct_state=+rpl"
        ofctl del-flows br0 --strict "table=101, priority=150, ct_state=+rpl"
        ofctl dump-flows br0 --no-stats --no-names | diff - "$here/$gen.dump"
    fi
    trace "$gen"
    if [ "$gen" = sdn-4.x ]; then
        # Then the egress routing the node commits as one bundle (a group and table 101 flows).
        ofctl bundle br0 "$here/sdn-4.x-egress.bundle"
        ofctl dump-flows br0 --no-stats --no-names > "$here/sdn-4.x-egress.dump"
        ofctl dump-groups br0 > "$here/sdn-4.x-egress.groups"
        trace sdn-4.x-egress
    fi
done
