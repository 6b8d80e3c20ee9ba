#!/bin/bash
# RSS of vxswitchd per pod port: a one-node lab, 110 pod namespaces attached with vxctl add-port.
set -u
L=vxpm
B=/work/main/target/release
$B/vxlab up --name $L --nodes 1 --pods 0 --ipv6 off >/dev/null 2>&1 || { echo up failed; exit 1; }
trap '$B/vxlab down --name $L >/dev/null 2>&1; for i in $(seq 2 111); do ip netns del $L-p$i 2>/dev/null; done' EXIT
SOCK=/run/vxlab/$L/n1/vxswitchd.sock
PID=$(cat /run/vxlab/$L/n1/vxswitchd.pid)
[ -n "$PID" ] || PID=$(ss -xlp 2>/dev/null | grep "$SOCK" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
rss() { awk '/VmRSS/{print $2}' /proc/$PID/status; }
r0=$(rss)
for i in $(seq 2 111); do
  ip netns add $L-p$i
  $B/vxctl --socket "$SOCK" add-port --netns $L-p$i --mac $(printf '0a:58:0a:01:01:%02x' $i) --ip 10.1.1.$i p$i >/dev/null || echo "add-port $i failed"
done
r1=$(rss)
echo "pid $PID rss before ${r0} kB, after 110 pods ${r1} kB: $(( (r1-r0)*1024/110 )) B per pod port"
