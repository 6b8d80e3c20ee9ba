#!/bin/sh
# Regenerates the captured vectors in this directory from a real OVS bridge:
#   gen.sh REAL_MGMT_SOCK
# Each output file holds, per command, a line "> ARG" for the ovs-ofctl argument and one
# hex line per OpenFlow message it sent (version in the first byte).
set -eu
real=$1
here=$(cd "$(dirname "$0")" && pwd)
root=$here/../../../..
cap() { python3 "$here/capture.py" "$real" -- "$@"; }
flows() {
    grep -hv "^#" "$@" | grep -v '^[[:space:]]*$'
}
for v in 13 14; do
    out=$here/flow_mod_of$v.txt
    : >"$out"
    flows "$root"/tests/data/openshift/*.flows "$here/extra.flows" | while IFS= read -r f; do
        ovs-ofctl -O OpenFlow$v del-flows "unix:$real"
        if hex=$(cap ovs-ofctl -O OpenFlow$v add-flow unix:SOCK "$f" 2>/dev/null); then
            printf '> %s\n%s\n' "$f" "$hex" >>"$out"
        else
            printf '! %s\n' "$f" >>"$out"
        fi
    done
done

# Groups (added first: flows may name them), packet-outs, dumps with filters, deletes.
for v in 13 14; do
    out=$here/misc_of$v.txt
    : >"$out"
    ovs-ofctl -O OpenFlow$v del-flows "unix:$real"
    ovs-ofctl -O OpenFlow$v del-groups "unix:$real"
    grep -v '^#' "$here/misc.cmds" | grep -v '^[[:space:]]*$' | while IFS='|' read -r cmd arg1 arg2; do
        set -- ovs-ofctl -O OpenFlow$v
        line="$cmd|$arg1|$arg2"
        case $cmd in
        --strict*) set -- "$@" --strict; cmd=${cmd#--strict } ;;
        esac
        if [ -n "$arg2" ]; then
            hex=$(cap "$@" "$cmd" unix:SOCK "$arg1" "$arg2" 2>&1) || hex="! $hex"
        else
            hex=$(cap "$@" "$cmd" unix:SOCK "$arg1" 2>&1) || hex="! $hex"
        fi
        printf '> %s\n%s\n' "$line" "$hex" >>"$out"
    done
done
