#!/bin/sh
# Rebuilds tests/nodes/data/real/: real iproute2 output from a flannel-shaped namespace.
# Run as root from the repository root: sh tests/nodes/data/make_real.sh [OUT [QUERIES]]
# With QUERIES (a file of `ip route get` arguments, one query a line), also writes OUT/route-get:
# one line per query, the kernel's answer (or its error), for test_nodes_routing.py.
set -eu
NS=${K8SC_NS:-k8sC-fixture}
OUT=${1:-tests/nodes/data/real}
QUERIES=${2:-}
cleanup() { ip netns del "$NS" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
ip netns add "$NS"
x() { ip netns exec "$NS" "$@"; }
x ip link set lo up
x ip link add eth0 type veth peer name eth0-peer
x ip link set eth0 address 52:54:00:00:56:0b
x ip addr add 192.168.56.11/24 dev eth0
x ip link set eth0 up
x ip link set eth0-peer up
x ip link add cni0 type bridge
x ip link set cni0 address 0a:58:0a:f4:01:01
x ip addr add 10.244.1.1/24 dev cni0
x ip link set cni0 up
x ip link add veth1a2b3c4d type veth peer name pod-eth0
x ip link set veth1a2b3c4d master cni0
x ip link set veth1a2b3c4d up
x ip link set pod-eth0 up
x ip link add flannel.1 type vxlan id 1 local 192.168.56.11 dev eth0 dstport 8472 nolearning
x ip link set flannel.1 mtu 1450 address 9a:5f:1e:01:01:01
x ip addr add 10.244.1.0/32 dev flannel.1
x ip link set flannel.1 up
x ip link add kube-ipvs0 type bridge
x ip addr add 10.96.0.10/32 dev kube-ipvs0
x ip route add default via 192.168.56.1 dev eth0
x ip route add 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
x ip route add 10.244.3.0/24 via 10.244.3.0 dev flannel.1 onlink
x ip neigh replace 10.244.2.0 lladdr 9a:5f:1e:02:02:02 dev flannel.1 nud permanent
x ip neigh replace 10.244.3.0 lladdr 9a:5f:1e:03:03:03 dev flannel.1 nud permanent
x bridge fdb append 9a:5f:1e:02:02:02 dev flannel.1 dst 192.168.56.12 self permanent
x bridge fdb append 9a:5f:1e:03:03:03 dev flannel.1 dst 192.168.56.13 self permanent
x ip neigh replace 192.168.56.1 lladdr 52:54:00:00:56:01 dev eth0 nud reachable
x ip neigh replace 192.168.56.99 dev eth0 nud failed 2>/dev/null || true
x ip route add blackhole 10.99.0.0/16
x ip route add unreachable 10.98.0.0/16
x ip route add prohibit 10.97.0.0/16 metric 10
x ip route add 172.16.0.0/12 via 192.168.56.254 dev eth0 metric 200 mtu 1400
x ip route add 172.16.0.0/12 via 192.168.56.253 dev eth0 metric 100
x ip route add 10.10.0.0/16 via 192.168.56.2 dev eth0 table 100
x ip route add default via 192.168.56.3 dev eth0 table 100 src 192.168.56.11
x ip rule add fwmark 0x4000/0x4000 lookup 100 pref 1000
x ip rule add from 10.244.1.0/24 to 10.10.0.0/16 lookup 100 pref 1001
x ip rule add not from all iif lo lookup main pref 1002 2>/dev/null || true
x ip rule add to 10.250.0.0/16 blackhole pref 1003
x ip -6 addr add fd00:56::11/64 dev eth0 nodad
for f in ip-addr:"ip -d addr show" ip-link:"ip -d link show" ip-route:"ip route show table all" \
         ip-neigh:"ip neigh show" ip-addr.json:"ip -j -d addr show" ip-link.json:"ip -j -d link show" \
         ip-route.json:"ip -j route show table all" ip-rule.json:"ip -j rule show" \
         bridge-fdb.json:"bridge -j fdb show" ip-neigh.json:"ip -j neigh show"; do
  name=${f%%:*}; cmd=${f#*:}
  # shellcheck disable=SC2086
  x $cmd > "$OUT/$name"
done
echo "k8sC-node1" > "$OUT/node"
x ip rule show > "$OUT/ip-rule"
x bridge fdb show > "$OUT/bridge-fdb"
if [ -n "$QUERIES" ]; then
  x sysctl -qw net.ipv4.ip_forward=1
  x sysctl -qw net.ipv4.conf.all.rp_filter=0
  x sysctl -qw net.ipv4.conf.cni0.rp_filter=1
  x sysctl -qw net.ipv4.conf.flannel/1.rp_filter=1
  x sysctl -qw net.ipv4.conf.eth0.rp_filter=2
  x sysctl -a 2>/dev/null | grep -E '^net\.ipv4\.(ip_forward|conf\..*\.rp_filter)' > "$OUT/sysctl"
  : > "$OUT/route-get"
  while IFS= read -r q; do
    # shellcheck disable=SC2086
    answer=$(x ip -o route get $q 2>&1 | head -n 1) || true
    printf '%s\t%s\n' "$q" "$answer" >> "$OUT/route-get"
  done < "$QUERIES"
fi
