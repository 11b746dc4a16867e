#!/bin/sh
# Starts dockerd for the interoperability tests unless one already answers. This machine has no
# bridge networking, so docker runs with networking off and builds use --network host.
set -eu
if docker info >/dev/null 2>&1; then exit 0; fi
nohup dockerd --iptables=false --ip6tables=false --bridge=none >/var/log/isb-dockerd.log 2>&1 &
i=0
until docker info >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 120 ] || { echo "dockerd did not start; see /var/log/isb-dockerd.log" >&2; exit 1; }
    sleep 0.5
done
