"""Node bundles: the directory (or ``collect`` tarball) of one node's dumps and captures.

``BUNDLE_COMMANDS`` is the single list of (file name, shell command) pairs that ``collect`` runs
on a node and the lab runs inside its namespaces; ``docs/bundle.md`` documents the same table
(a test keeps the two in step). ``load_bundle`` reads a bundle back into a ``NodeSnapshot``.
"""

from __future__ import annotations

#: (file name in the bundle, POSIX sh command run as root on the node), in collection order.
#: ``K8S_TRACE_SUBNET_ENV`` overrides where flannel's subnet.env is read from.
BUNDLE_COMMANDS: tuple[tuple[str, str], ...] = (
    ("node", "hostname"),
    ("iptables-save", "iptables-save -c 2>/dev/null || iptables-save"),
    ("ip6tables-save", "ip6tables-save -c 2>/dev/null || ip6tables-save"),
    ("ip-addr", "ip -d addr show"),
    ("ip-link", "ip -d link show"),
    ("ip-route", "ip route show table all"),
    ("ip6-route", "ip -6 route show table all"),
    ("ip-rule", "ip rule show"),
    ("bridge-fdb", "bridge fdb show"),
    ("ip-neigh", "ip neigh show"),
    ("subnet.env", 'cat "${K8S_TRACE_SUBNET_ENV:-/run/flannel/subnet.env}"'),
    ("conntrack", "conntrack -L 2>/dev/null"),
    (
        "sysctl",
        r"sysctl -a 2>/dev/null | grep -E '^net\.(ipv4\.(ip_forward|conf\..*\.rp_filter)|bridge\.)'",
    ),
    ("kubectl.json", "kubectl get pods,svc,endpointslices,nodes -A -o json"),
)
