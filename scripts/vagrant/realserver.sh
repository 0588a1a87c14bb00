#!/usr/bin/env bash
# Vagrant provisioning of a real server: a web server answering with the host's name, and the per-method real-server
# configuration of scripts/lab/realserver-setup.sh (the namespace lab's own script), applied now and at every boot.
#
#   realserver.sh dr|tun|nat NAME ADDR --vip VIP --port PORT [--gateway ADDR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

method=${1:?method}
name=${2:?name}
addr=${3:?address}
shift 3
vip= port=80 gateway=
while [ $# -gt 0 ]; do
  case "$1" in
    --vip) vip=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --gateway) gateway=$2; shift 2 ;;
    *) die "realserver.sh: unknown argument $1" ;;
  esac
done
dev=$(iface_of "$addr")

# Everything that needs the internet first: with nat, the default route goes through the director afterwards.
apt_install python3 ethtool kmod iproute2 procps

install -d /srv/xdpvs-www
echo "$name" >/srv/xdpvs-www/index.html
cat >/etc/systemd/system/xdpvs-www.service <<UNIT
[Unit]
Description=xdpvs lab web server (answers with the real server's name)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/bin/python3 -m http.server $port --bind 0.0.0.0 --directory /srv/xdpvs-www
DynamicUser=yes
AmbientCapabilities=CAP_NET_BIND_SERVICE
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT

args=("$method" --dev "$dev")
case "$method" in
  dr | tun) args+=(--vip "$vip") ;;
  nat) args+=(--gateway "$gateway") ;;
esac
install -m 0755 "$here/../lab/realserver-setup.sh" /usr/local/sbin/xdpvs-realserver-setup
cat >/etc/systemd/system/xdpvs-realserver.service <<UNIT
[Unit]
Description=xdpvs real server configuration ($method)
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/xdpvs-realserver-setup ${args[*]}

[Install]
WantedBy=multi-user.target
UNIT

systemctl daemon-reload
systemctl enable --quiet xdpvs-www.service xdpvs-realserver.service
systemctl restart xdpvs-www.service xdpvs-realserver.service
say "$name: $method real server on $dev ($addr), serving its name on port $port"
say "$name: configured by: xdpvs-realserver-setup ${args[*]}"
