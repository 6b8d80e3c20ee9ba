#!/bin/bash
# The reference for tests/tests/openshift_lab.rs on real Open vSwitch: a two-node vxlab of
# kind ovs whose br-int is re-plumbed to OpenShift's layout (vxlan0 = 1 with remote_ip=flow
# and key=flow, tun0 = 2, the pods 3-5) and programmed only with origin 3.6's multitenant
# program, expanded per node from origin-3.6.template with the values the test uses. Then the
# test's pings, and table 80's drop counts. Needs root, vxlab (VXLAB=path, default: vxlab on
# PATH) and Debian's openvswitch-switch; the lab is removed at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vxlab=${VXLAB:-vxlab}
lab=osref$(( $$ % 1000 ))
"$vxlab" up --name "$lab" --nodes 2 --pods 3 --kinds ovs --ipv6 off >/dev/null
trap '"$vxlab" down --name "$lab" >/dev/null' EXIT
# The template's expansion (see its header): pods 10.1.N.2-4 with VNIDs 0, 5, 6 at ports 3-5.
expand() {
    local n=$1 o=$((3 - $1)) pod vnid j=0
    local pods="" tenants="" nodes="" services=""
    while IFS= read -r line; do
        case "$line" in
        '#'* | '') ;;
        '@pod '*) pods+="${line#@pod }"$'\n' ;;
        '@tenant '*) tenants+="${line#@tenant }"$'\n' ;;
        '@node '*) nodes+="${line#@node }"$'\n' ;;
        '@service '*) services+="${line#@service }"$'\n' ;;
        *)
            flush "$n" "$o"
            echo "$line" ;;
        esac
    done < "$here/origin-3.6.template"
    flush "$n" "$o"
}
flush() {
    local n=$1 o=$2 j vnid note
    if [ -n "$tenants" ]; then for vnid in 5 6; do printf '%s' "${tenants//\{VNID\}/$vnid}"; done; tenants=""; fi
    if [ -n "$pods" ]; then
        for j in 0 1 2; do
            vnid=$(echo 0 5 6 | cut -d' ' -f$((j + 1)))
            note=$(printf '%02x.%02x' "$n" "$j"); for _ in $(seq 30); do note+=.c0; done
            echo -n "$pods" | sed -e "s/{POD_PORT}/$((3 + j))/g" -e "s/{POD_IP}/10.1.$n.$((2 + j))/g" \
                -e "s/{POD_MAC}/0a:58:0a:01:0$n:0$((2 + j))/g" -e "s/{POD_VNID}/$vnid/g" -e "s/{POD_NOTE}/$note/g"
        done
        pods=""
    fi
    if [ -n "$nodes" ]; then echo -n "$nodes" | sed -e "s/{REMOTE_IP}/198.51.100.$o/g" -e "s#{REMOTE_SUBNET}#10.1.$o.0/24#g"; nodes=""; fi
    if [ -n "$services" ]; then echo -n "$services" | sed -e 's/{SVC_IP}/172.30.0.10/g' -e 's/{SVC_PORT}/8080/g' -e 's/{SVC_VNID}/5/g'; services=""; fi
}
fill() {
    sed -e 's#{CLUSTER_NETWORK}#10.1.0.0/16#g' -e "s#{LOCAL_SUBNET}#10.1.$1.0/24#g" -e "s/{GATEWAY}/10.1.$1.1/g" \
        -e 's#{SERVICE_NETWORK}#172.30.0.0/16#g' -e 's/{VERSION_NOTE}/01.03/g' \
        -e "s/{VXLAN_MULTICAST_OUTPUTS}/set_field:198.51.100.$((3 - $1))->tun_dst,output:1/g"
}
for n in 1 2; do
    d=/run/vxlab/$lab/n$n/ovs
    vs="ovs-vsctl --db=unix:$d/db.sock --timeout=20"
    $vs del-port br-int vxlan$((3 - n))
    for j in 1 2 3; do $vs set interface vn${n}p$j ofport_request=$((j + 2)); done
    $vs add-port br-int vxlan0 -- set interface vxlan0 type=vxlan options:remote_ip=flow \
        options:key=flow ofport_request=1
    $vs add-port br-int tun0 -- set interface tun0 type=internal ofport_request=2
    ovs-ofctl -O OpenFlow13 del-flows "unix:$d/br-int.mgmt"
    expand "$n" | fill "$n" | ovs-ofctl -O OpenFlow13 add-flows "unix:$d/br-int.mgmt" -
    for j in 1 2 3; do
        ip -n "$lab-n${n}p$j" route replace 10.1.0.0/16 dev eth0
        ip -n "$lab-n${n}p$j" neigh flush all
    done
done
ping_() { printf '%-5s -> %-9s ' "$1" "$2"; ip netns exec "$lab-$1" ping -n -c 3 -i 0.2 -W 2 "$2" | grep transmitted || true; }
echo "same tenant (VNID 5) across nodes:"; ping_ n1p2 10.1.2.3; ping_ n2p2 10.1.1.3
echo "VNID 5 -> VNID 6, across nodes and on one node:"; ping_ n1p2 10.1.2.4; ping_ n1p2 10.1.1.4
for n in 2 1; do echo "n$n table 80 drop: $(ovs-ofctl -O OpenFlow13 dump-flows unix:/run/vxlab/$lab/n$n/ovs/br-int.mgmt table=80 | grep -o 'n_packets=[0-9]*, n_bytes=[0-9]*, priority=0 actions=drop')"; done
echo "VNID 0 and the tenants:"; ping_ n1p1 10.1.2.3; ping_ n1p1 10.1.2.4; ping_ n2p2 10.1.1.2; ping_ n2p3 10.1.1.2; ping_ n1p1 10.1.2.2
