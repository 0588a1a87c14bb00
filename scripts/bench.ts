// `npm run bench`: measures the data plane, Maglev, the control plane and the lab end to end in one run, prints
// every figure next to its same-run baseline with the issue's targets marked, and writes bench-results/.
//
//   node dist/scripts/bench.js [--only dataplane,maglev,control-plane,end-to-end] [--quick] [--out DIR]
//
// Exit status: 0 when every measurement ran (missed targets are reported, not errors), 1 when one failed.

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { PACKAGE_ROOT } from '../src/paths.js';
import { CONTROL_DEFAULTS, runControlPlane } from './bench/control-plane.js';
import { DATAPLANE_DEFAULTS } from './bench/dataplane.js';
import { runDataplaneInNetns } from './bench/dataplane-netns.js';
import { E2E_DEFAULTS, runE2e } from './bench/e2e.js';
import { MAGLEV_DEFAULTS, runMaglev } from './bench/maglev.js';
import { SectionError, markdownReport, tallyTargets, textReport, type Section, type SectionId } from './bench/report.js';
import { nowNs } from './bench/stats.js';
import { installSignalCleanup } from './lab/netns.js';

const ALL: SectionId[] = ['dataplane', 'maglev', 'control-plane', 'end-to-end'];

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: join(PACKAGE_ROOT, 'bench-results') },
  },
  strict: true,
});

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', cwd: PACKAGE_ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

function machine(): Record<string, unknown> {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model;
  return {
    kernel: sh('uname', ['-r']),
    cpu: model,
    cpus: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    loadavgAtStart: loadavg().map((x) => Number(x.toFixed(2))),
    wrk: sh('wrk', ['--version']).split('\n')[0]?.split(' ').slice(0, 2).join(' ') || undefined,
    nft: sh('nft', ['--version']) || undefined,
  };
}

function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  return { busy: total - cpu[3] - (cpu[4] ?? 0), total };
}

/** How busy the whole machine was since `m0` (this bench and everything else on it), and its load average now. */
function machineLoad(m0: { busy: number; total: number }): { machineBusy: number; loadavg: number[] } {
  const m1 = machineTicks();
  return { machineBusy: Number(((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)).toFixed(2)), loadavg: loadavg().map((x) => Number(x.toFixed(1))) };
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: needs root (BPF_PROG_TEST_RUN, bpffs, network namespaces)\n');
    return 1;
  }
  installSignalCleanup((signal) => process.stderr.write(`\nbench: ${signal}: cleaning up\n`));
  const only = values.only ? (values.only.split(',').map((s) => s.trim()) as SectionId[]) : ALL;
  for (const s of only) if (!ALL.includes(s)) throw new Error(`--only: unknown section ${s} (sections: ${ALL.join(', ')})`);
  const quick = values.quick;
  const started = new Date();
  const t0 = nowNs();
  const env = machine();
  const commit = sh('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['status', '--porcelain', '--untracked-files=no']) !== '';

  const runners: Record<SectionId, () => Promise<Section>> = {
    dataplane: () => runDataplaneInNetns(quick ? { repeat: 20_000, rounds: 5, singles: 2_000 } : DATAPLANE_DEFAULTS, log),
    maglev: () => runMaglev(quick ? { builds: 5 } : MAGLEV_DEFAULTS, log),
    'control-plane': () =>
      runControlPlane(quick ? { ...CONTROL_DEFAULTS, iterations: 5, sustainSeconds: 1, busyConns: 5_000, rssServices: 100 } : CONTROL_DEFAULTS, log),
    'end-to-end': () => runE2e(quick ? { ...E2E_DEFAULTS, seconds: 2, rounds: 1 } : E2E_DEFAULTS, log),
  };
  const titles: Record<SectionId, string> = {
    dataplane: '1. XDP program per-packet cost',
    maglev: '2. Maglev',
    'control-plane': '3. Control plane to data plane',
    'end-to-end': '4. End to end in the namespace lab',
  };

  const sections: Section[] = [];
  for (const id of only) {
    const s0 = nowNs();
    const m0 = machineTicks();
    log(`section ${titles[id]}`);
    try {
      const s = await runners[id]();
      s.context = { ...s.context, ...machineLoad(m0) };
      sections.push(s);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      log(`section ${titles[id]} FAILED: ${e instanceof Error ? e.stack ?? msg : msg}`);
      const rows = e instanceof SectionError ? e.rows : [];
      sections.push({ id, title: titles[id], rows, methods: {}, error: msg, durationS: (nowNs() - s0) / 1e9, context: machineLoad(m0) });
    }
  }

  const durationS = (nowNs() - t0) / 1e9;
  const tally = tallyTargets(sections);
  const failed = sections.filter((s) => s.error);
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const header =
    `xdpvs benchmark — ${started.toISOString()} — commit ${commit || '?'}${dirty ? ' (with uncommitted changes)' : ''}\n` +
    `${env.cpu}, ${env.cpus} CPUs (shared), kernel ${env.kernel}, node ${env.node}; load average at start ${(env.loadavgAtStart as number[]).join(' ')}\n` +
    `every figure is next to a baseline measured in the same run; ratio = value / baseline`;
  const summary =
    `targets: ${tally.met.length} met, ${tally.missed.length} missed, ${tally.notImplemented.length} not implemented yet` +
    (failed.length ? `; MEASUREMENTS FAILED in: ${failed.map((s) => s.title).join(', ')}` : '') +
    `\nran in ${durationS.toFixed(0)} s`;
  process.stdout.write(`${header}\n${textReport(sections)}\n\n${summary}\n`);
  if (tally.missed.length) process.stdout.write(`missed:\n${tally.missed.map((m) => `  - ${m}`).join('\n')}\n`);

  mkdirSync(values.out, { recursive: true });
  const json = {
    version: 1,
    command,
    startedAt: started.toISOString(),
    durationS: Number(durationS.toFixed(1)),
    commit,
    dirty,
    machine: { ...env, loadavgAtEnd: loadavg().map((x) => Number(x.toFixed(2))) },
    targets: tally,
    // Each row carries its method in full ("method") and the key the tables print ("methodKey").
    sections: sections.map((sec) => ({
      ...sec,
      rows: sec.rows.map((r) => ({ ...r, methodKey: r.method, method: sec.methods[r.method] ?? r.method })),
    })),
  };
  writeFileSync(join(values.out, 'latest.json'), `${JSON.stringify(json, null, 2)}\n`);
  const md =
    `# Latest benchmark\n\nMade by \`${command}\` on ${started.toISOString()} (commit ${commit || '?'}${dirty ? ', with uncommitted changes' : ''}), ` +
    `${env.cpu}, ${env.cpus} CPUs shared with other work, kernel ${env.kernel}, node ${env.node}. ` +
    `What each number means and how it is measured: [docs/bench.md](../docs/bench.md). Full data: [latest.json](latest.json).\n` +
    `${markdownReport(sections)}\n\n**${summary.replace('\n', '** — ')}\n`;
  writeFileSync(join(values.out, 'latest.md'), md);
  log(`wrote ${join(values.out, 'latest.json')} and latest.md`);
  return failed.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(1);
  },
);
