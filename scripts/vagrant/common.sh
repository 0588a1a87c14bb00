#!/usr/bin/env bash
# Helpers shared by the Vagrant lab's provisioning scripts (sourced, not run).

export DEBIAN_FRONTEND=noninteractive

say() { echo "xdpvs-vagrant: $*"; }
die() {
  echo "xdpvs-vagrant: $*" >&2
  exit 1
}

# The interface that holds an IPv4 address (Vagrant names private-network interfaces; we find them by address).
iface_of() {
  local dev
  dev=$(ip -o -4 addr show | awk -v a="$1" '{ split($4, p, "/"); if (p[1] == a) { print $2; exit } }')
  [ -n "$dev" ] || die "no interface holds $1 (is the private network up?)"
  echo "$dev"
}

# apt-get install, only of what is missing (re-provisioning stays fast and works offline once installed).
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
