#!/usr/bin/env bash
# Configures this host as a real server for one forwarding method: the one description of how an LVS real server is
# set up, used by the namespace lab (`ip netns exec NS bash scripts/lab/realserver-setup.sh ...`, see topology.ts)
# and by the Vagrant lab (scripts/vagrant/realserver.sh). Idempotent: running it again changes nothing.
#
#   realserver-setup.sh dr|tun|nat --dev DEV [--vip ADDR]... [--gateway ADDR] [--gateway6 ADDR] [--decap kernel|none]
#
#   dr   the VIP(s) on lo, so the host accepts packets for them; arp_ignore=1 and arp_announce=2 on all, lo and DEV,
#        so that it never answers ARP for an IPv4 VIP nor uses one as the source of its own ARP requests (the seed's
#        `ifconfig lo:1 VIP/32` with the arp sysctls). IPv6 needs no such setting: Linux answers a neighbour
#        solicitation only for an address on the interface it arrived on, and a VIP on lo never is.
#   tun  as dr, plus decapsulation of the director's IP-in-IP packets: with --decap kernel (the default) the ipip and
#        ip6_tunnel modules' fallback devices tunl0 and ip6tnl0, up; with --decap none the caller attaches its own
#        decapsulator (the namespace lab's kernel has no IPIP, so the lab attaches the project's XDP decap program).
#        Reverse-path filtering is off on all, DEV and the tunnel devices: a decapsulated packet's source (the client)
#        is not routed through the device it arrived on.
#   nat  no VIP; the default route goes through the director's address on the real servers' network (--gateway,
#        --gateway6), so that replies pass the director, which rewrites their source back to the VIP.
#
# Every method also turns transmit checksum offload off on DEV: on veth (and some virtual NICs) packets leave with
# partial checksums, and after an XDP rewrite they would arrive with bad TCP checksums and be dropped.
set -euo pipefail

usage() {
  echo "usage: $0 dr|tun|nat --dev DEV [--vip ADDR]... [--gateway ADDR] [--gateway6 ADDR] [--decap kernel|none]" >&2
  exit 2
}

[ $# -ge 1 ] || usage
method=$1
shift
case "$method" in
  dr | tun | nat) ;;
  tunnel) method=tun ;;
  *) echo "realserver-setup: unknown method '$method' (dr, tun or nat)" >&2; usage ;;
esac

dev= gateway= gateway6= decap=kernel
vips=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) dev=${2:?}; shift 2 ;;
    --vip) vips+=("${2:?}"); shift 2 ;;
    --gateway) gateway=${2:?}; shift 2 ;;
    --gateway6) gateway6=${2:?}; shift 2 ;;
    --decap) decap=${2:?}; shift 2 ;;
    *) echo "realserver-setup: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -n "$dev" ] || { echo "realserver-setup: --dev is required" >&2; usage; }
ip link show dev "$dev" >/dev/null || { echo "realserver-setup: no interface $dev" >&2; exit 1; }
case "$decap" in kernel | none) ;; *) echo "realserver-setup: --decap is kernel or none" >&2; usage ;; esac
if [ "$method" != nat ] && [ ${#vips[@]} -eq 0 ]; then
  echo "realserver-setup: $method needs at least one --vip" >&2
  usage
fi
if [ "$method" = nat ] && [ -z "$gateway" ] && [ -z "$gateway6" ]; then
  echo "realserver-setup: nat needs --gateway and/or --gateway6 (the director's address on this network)" >&2
  usage
fi

# Slash-separated keys, so that interface names with dots (VLANs) stay one component.
set_sysctl() { sysctl -q -w "$1=$2" >/dev/null; }

have4=0 have6=0
for vip in "${vips[@]}"; do
  case "$vip" in *:*) have6=1 ;; *) have4=1 ;; esac
done

if [ "$method" = dr ] || [ "$method" = tun ]; then
  for vip in "${vips[@]}"; do
    case "$vip" in
      *:*) ip -6 addr replace "$vip/128" dev lo nodad ;;
      *) ip addr replace "$vip/32" dev lo ;;
    esac
  done
  for d in all lo "$dev"; do
    set_sysctl "net/ipv4/conf/$d/arp_ignore" 1
    set_sysctl "net/ipv4/conf/$d/arp_announce" 2
  done
fi

if [ "$method" = tun ]; then
  tunnels=()
  if [ "$decap" = kernel ]; then
    [ $have4 = 0 ] || tunnels+=(tunl0)
    [ $have6 = 0 ] || tunnels+=(ip6tnl0)
    for t in "${tunnels[@]}"; do
      # Loading the module creates its fallback device, which decapsulates whatever arrives for a local address.
      if [ "$t" = tunl0 ]; then module=ipip config=CONFIG_NET_IPIP; else module=ip6_tunnel config=CONFIG_IPV6_TUNNEL; fi
      ip link show dev "$t" >/dev/null 2>&1 || modprobe "$module" 2>/dev/null || true
      if ! ip link show dev "$t" >/dev/null 2>&1; then
        echo "realserver-setup: this kernel has no $t ($config); attach another decapsulator and pass --decap none" >&2
        exit 1
      fi
      ip link set dev "$t" up
    done
  fi
  for d in all "$dev" "${tunnels[@]}"; do
    [ "$d" = ip6tnl0 ] && continue # rp_filter is IPv4's
    set_sysctl "net/ipv4/conf/$d/rp_filter" 0
  done
fi

if [ "$method" = nat ]; then
  [ -z "$gateway" ] || ip route replace default via "$gateway" dev "$dev"
  [ -z "$gateway6" ] || ip -6 route replace default via "$gateway6" dev "$dev"
fi

ethtool -K "$dev" tx off >/dev/null
