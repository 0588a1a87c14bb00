#!/usr/bin/env bash
# Vagrant provisioning of a director: Node 20, the project built in /opt/xdpvs, xdpvsd under systemd on the
# interfaces the method needs, the lab's virtual service configured with xdpvsadm, and (active) the VIP.
#
#   director.sh dr|tun|nat active|standby --front ADDR --back ADDR --vip VIP --port PORT --gateway ADDR \
#               --real-server ADDR [--real-server ADDR]...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

method=${1:?method}
role=${2:?role}
shift 2
front= back= vip= port=80 gateway=
real_servers=()
while [ $# -gt 0 ]; do
  case "$1" in
    --front) front=$2; shift 2 ;;
    --back) back=$2; shift 2 ;;
    --vip) vip=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --gateway) gateway=$2; shift 2 ;;
    --real-server) real_servers+=("$2"); shift 2 ;;
    *) die "director.sh: unknown argument $1" ;;
  esac
done
case "$method" in dr) flag=-g ;; tun) flag=-i ;; nat) flag=-m ;; *) die "director.sh: method is dr, tun or nat" ;; esac
case "$role" in active | standby) ;; *) die "director.sh: role is active or standby" ;; esac
front_dev=$(iface_of "$front")
back_dev=$(iface_of "$back")
src=/vagrant
root=/opt/xdpvs

# What scripts/bootstrap.sh installs to build and run the director (clang builds the XDP objects, libbpf is loaded
# through koffi), plus rsync for the copy and arping for moving the VIP. Not bootstrap.sh itself: it also installs
# what the test suite needs (wrk, nftables, vagrant...).
apt_install ca-certificates curl rsync clang llvm libbpf-dev iproute2 ethtool procps iputils-arping

# Node >= 20.19 (package.json "engines") from Debian itself: the box is Debian 13, whose nodejs is 20.19.
apt_install nodejs npm
node_ok() { node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; }
node_ok || die "Node $(node --version 2>/dev/null) is older than 20.19: use a Debian 13 box (XDPVS_BOX)"

# The project, copied out of the synced folder and built here (node_modules and build outputs are per machine).
say "building xdpvs in $root"
install -d "$root"
rsync -a --delete --exclude=.git/ --exclude=.vagrant/ --exclude=node_modules/ --exclude=dist/ --exclude=build/ \
  --exclude=.bench/ "$src/" "$root/"
(cd "$root" && npm ci --no-audit --no-fund --loglevel=error && bash scripts/build.sh)
# /usr/local/bin/xdpvsd is where deploy/xdpvsd.service runs it from.
for bin in xdpvsd:daemon xdpvsadm:cli; do
  printf '#!/bin/sh\nexec /usr/bin/node %s/dist/src/%s/main.js "$@"\n' "$root" "${bin#*:}" >"/usr/local/bin/${bin%%:*}"
  chmod 0755 "/usr/local/bin/${bin%%:*}"
done

# DR and TUN send packets back out of the front interface; NAT also sees the replies on the back one, and is set up
# as the namespace lab's NAT director is (scripts/lab/nat-topology.ts): forwarding on (the seed's ip_forward, and
# bpf_fib_lookup() needs it as the kernel does), no reverse-path filter, local sources accepted on the back side.
ifaces=("$front_dev")
if [ "$method" = nat ]; then
  ifaces+=("$back_dev")
  cat >/etc/sysctl.d/90-xdpvs.conf <<CONF
net.ipv4.ip_forward = 1
net.ipv6.conf.all.forwarding = 1
net.ipv4.conf.all.rp_filter = 0
net.ipv4.conf.default.rp_filter = 0
net.ipv4.conf.$front_dev.rp_filter = 0
net.ipv4.conf.$back_dev.rp_filter = 0
net.ipv4.conf.$back_dev.accept_local = 1
CONF
  sysctl -q -p /etc/sysctl.d/90-xdpvs.conf
fi

# What xdpvs-vip (scripts/vagrant/vip.sh) reads.
cat >/etc/default/xdpvs-vagrant <<CONF
METHOD=$method
VIP=$vip
GATEWAY=$gateway
FRONT_DEV=$front_dev
BACK_DEV=$back_dev
CONF
# The repository's unit (deploy/xdpvsd.service: state in /var/lib/xdpvs, token in /etc/xdpvs, hardened), with this
# lab's interfaces in /etc/default/xdpvsd (deploy/xdpvsd.default is the template).
[ -f "$root/deploy/xdpvsd.service" ] || die "$root/deploy/xdpvsd.service is missing"
install -m 0644 "$root/deploy/xdpvsd.service" /etc/systemd/system/xdpvsd.service
rm -rf /etc/systemd/system/xdpvsd.service.d
iface_args=
for i in "${ifaces[@]}"; do iface_args+="--interface $i "; done
cat >/etc/default/xdpvsd <<CONF
# Written by scripts/vagrant/director.sh ($method, $role director); read by xdpvsd.service.
XDPVSD_INTERFACES="${iface_args% }"
XDPVSD_OPTS=""
CONF
systemctl daemon-reload
systemctl enable --quiet xdpvsd.service
systemctl restart xdpvsd.service

say "waiting for xdpvsd"
for _ in $(seq 1 60); do
  xdpvsadm -Ln >/dev/null 2>&1 && break
  sleep 1
done
xdpvsadm -Ln >/dev/null || { journalctl -u xdpvsd --no-pager -n 40 >&2; die "xdpvsd did not come up"; }

# Both directors get the same configuration; mh (Maglev) makes them pick the same real server for a flow, and
# mh-port spreads one client's connections over the real servers (the source port joins the hash).
xdpvsadm -C
xdpvsadm -A -t "$vip:$port" -s mh -b mh-port
for rs in "${real_servers[@]}"; do xdpvsadm -a -t "$vip:$port" -r "$rs:$port" "$flag"; done

install -m 0755 "$here/vip.sh" /usr/local/sbin/xdpvs-vip
if [ "$role" = active ]; then
  xdpvs-vip take
else
  xdpvs-vip release
fi

say "$(hostname): $role director, xdpvsd on ${ifaces[*]}, method $method"
xdpvsadm -Ln
