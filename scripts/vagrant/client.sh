#!/usr/bin/env bash
# Vagrant provisioning of the client: curl, and a first look at the VIP once everything is up.
#
#   client.sh ADDR VIP PORT METHOD
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

addr=${1:?address}
vip=${2:?vip}
port=${3:?port}
method=${4:?method}
dev=$(iface_of "$addr")
apt_install curl ethtool
# As on every host of the namespace lab: no partial checksums on packets an XDP program will rewrite.
ethtool -K "$dev" tx off >/dev/null 2>&1 || true

say "four requests to http://$vip:$port/ ($method):"
ok=0
for i in 1 2 3 4; do
  if body=$(curl -s -S --max-time 3 "http://$vip:$port/" 2>&1); then
    say "  $i: $body"
    ok=$((ok + 1))
  else
    say "  $i: failed: $body"
  fi
done
if [ $ok -eq 0 ]; then
  say "no answer yet: if the directors or real servers are still being provisioned, try later with"
  say "  vagrant ssh client -c 'curl http://$vip:$port/'"
fi
