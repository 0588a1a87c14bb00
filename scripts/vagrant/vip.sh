#!/usr/bin/env bash
# Moves the lab's VIP (and, for NAT, the real servers' gateway address) to or from this director.
#
#   xdpvs-vip take      hold the addresses (now and at boot) and announce them with gratuitous ARP
#   xdpvs-vip release   drop them
#   xdpvs-vip apply     hold them without announcing (what the boot unit runs)
#   xdpvs-vip status
#
# Both directors run xdpvsd with the same configuration, so taking the VIP over is all a failover needs; real
# keepalived (VRRP) does the same automatically (docs/keepalived.md when present).
set -euo pipefail
. /etc/default/xdpvs-vagrant

addrs() {
  echo "$VIP/32 $FRONT_DEV"
  if [ "$METHOD" = nat ]; then echo "$GATEWAY/32 $BACK_DEV"; fi
}

hold() {
  while read -r a dev; do ip addr replace "$a" dev "$dev"; done < <(addrs)
}

case "${1:-}" in
  apply) hold ;;
  take)
    hold
    while read -r a dev; do arping -q -U -c 2 -I "$dev" "${a%/*}" || true; done < <(addrs)
    cat >/etc/systemd/system/xdpvs-vip.service <<UNIT
[Unit]
Description=xdpvs lab: hold the VIP on this director
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/xdpvs-vip apply

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable --quiet xdpvs-vip.service
    echo "$(hostname) holds $(addrs | cut -d' ' -f1 | tr '\n' ' ')"
    ;;
  release)
    while read -r a dev; do ip addr del "$a" dev "$dev" 2>/dev/null || true; done < <(addrs)
    systemctl disable --quiet xdpvs-vip.service 2>/dev/null || true
    echo "$(hostname) holds no VIP"
    ;;
  status)
    while read -r a dev; do
      if ip -o addr show dev "$dev" | grep -q " ${a} "; then echo "$a on $dev"; else echo "$a not here"; fi
    done < <(addrs)
    ;;
  *)
    echo "usage: $0 take|release|apply|status" >&2
    exit 2
    ;;
esac
