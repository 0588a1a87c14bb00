#!/usr/bin/env bash
# Builds the XDP objects (clang, BTF kept for the codec checks) and the TypeScript (tsc) into build/ and dist/.
set -euo pipefail
cd "$(dirname "$0")/.."

mkdir -p build/bpf
arch_inc="/usr/include/$(uname -m)-linux-gnu"
for src in bpf/*.bpf.c; do
  obj="build/bpf/$(basename "${src%.c}").o"
  if [ ! -f "$obj" ] || [ -n "$(find bpf -newer "$obj" -name '*.[ch]' -print -quit)" ]; then
    clang -O2 -g -Wall -Werror -target bpf -mcpu=v3 -I"$arch_inc" -Ibpf -c "$src" -o "$obj"
  fi
done

npx tsc -p .
