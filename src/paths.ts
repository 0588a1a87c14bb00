// Where the installed package keeps its build outputs, whether running from dist/ (tsc) or src/ (vitest).

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the xdpvs package root');
    dir = up;
  }
  return dir;
}

export const PACKAGE_ROOT = findRoot();
/** The director's XDP object, built by scripts/build.sh. */
export const LB_OBJECT = join(PACKAGE_ROOT, 'build/bpf/xdpvs_lb.bpf.o');
export const LB_PROGRAM = 'xdpvs_lb';
/** The real server's decapsulation program (xdpvsd --role realserver). */
export const DECAP_OBJECT = join(PACKAGE_ROOT, 'build/bpf/xdpvs_decap.bpf.o');
export const DECAP_PROGRAM = 'xdpvs_decap';
export const VERSION: string = '0.1.0';
