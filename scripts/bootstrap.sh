#!/usr/bin/env bash
# Installs what is missing (Debian packages, npm dependencies) and builds; `npm run demo` and `npm test` start here.
set -euo pipefail
cd "$(dirname "$0")/.."

# clang/llvm build the XDP objects; libbpf is loaded through koffi; bpftool reads BTF for the codec checks;
# iproute2, ethtool, curl and procps (sysctl) build and exercise the namespace lab.
debs=(clang llvm libbpf-dev bpftool iproute2 ethtool curl procps nftables wrk)
# vagrant checks the Vagrantfile (`vagrant validate --ignore-provider`, test/unit/vagrant.test.ts); no provider needed.
debs+=(vagrant)
# keepalived runs VRRP between the two directors of the failover lab (test/e2e/failover.test.ts, docs/keepalived.md).
debs+=(keepalived)
# clang -target bpf is not x86_64, so glibc's headers (reached through linux/icmp.h -> linux/if.h -> sys/socket.h)
# ask for the 32-bit stubs; Debian ships them in libc6-dev-i386 on amd64.
[ "$(uname -m)" = x86_64 ] && debs+=(libc6-dev-i386)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: need root to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci when node_modules is missing or older than the lock file.
stamp=node_modules/.xdpvs-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "bootstrap: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

bash scripts/build.sh
