// The benchmark's report: rows with their baseline, ratio and targets, printed as a text table (stdout) and
// a Markdown table (bench-results/latest.md), and kept whole in JSON (bench-results/latest.json).

export type SectionId = 'dataplane' | 'maglev' | 'control-plane' | 'end-to-end';

/** One promise of the issue, held against one row. */
export interface Target {
  /** What is promised, as printed: "≤ 100 ns", "≤ 3× baseline". */
  text: string;
  met: boolean;
}

export interface Baseline {
  label: string;
  value: number;
  unit: string;
}

export interface Row {
  /** Stable key in the JSON (e.g. "dr-tcp4-established"). */
  id: string;
  label: string;
  /** not-implemented: the code measured does not do this yet; nothing is measured and nothing is invented. */
  status: 'measured' | 'not-implemented';
  value: number | null;
  unit: string;
  /** Printed instead of value and unit (e.g. "4.1 / 9.8 ms" for p50 / p99). */
  display?: string;
  baseline?: Baseline;
  /** value / baseline.value, unless the row says otherwise (null: no ratio, the baseline is context). */
  ratio?: number | null;
  targets: Target[];
  /** Key into the section's methods: how this number was obtained. */
  method: string;
  note?: string;
  details?: Record<string, unknown>;
}

export interface Section {
  id: SectionId;
  title: string;
  rows: Row[];
  /** Method key -> how it measures, what it includes and excludes. */
  methods: Record<string, string>;
  /** Set when a measurement of the section failed (the bench then exits non-zero). */
  error?: string;
  durationS: number;
  context?: Record<string, unknown>;
}

/** A failure in the middle of a section: the rows measured before it are still reported. */
export class SectionError extends Error {
  constructor(
    message: string,
    readonly rows: Row[],
  ) {
    super(message);
    this.name = 'SectionError';
  }
}

export function row(r: Omit<Row, 'targets' | 'status'> & Partial<Pick<Row, 'targets' | 'status'>>): Row {
  const out: Row = { status: 'measured', targets: [], ...r };
  if (out.ratio === undefined && out.baseline && out.value !== null && out.baseline.value > 0) {
    out.ratio = out.value / out.baseline.value;
  }
  return out;
}

/** A row for something the code does not do yet: reported as such, never with a number. */
export function notImplemented(id: string, label: string, method: string, note: string, targets: string[] = []): Row {
  return { id, label, status: 'not-implemented', value: null, unit: '', targets: targets.map((text) => ({ text, met: false })), method, note };
}

export function atMost(value: number, limit: number, text: string): Target {
  return { text, met: value <= limit };
}

export function atLeast(value: number, limit: number, text: string): Target {
  return { text, met: value >= limit };
}

export type RowVerdict = 'met' | 'MISSED' | 'n/a (not implemented)' | '';

export function verdict(r: Row): RowVerdict {
  if (r.status === 'not-implemented') return 'n/a (not implemented)';
  if (r.targets.length === 0) return '';
  return r.targets.every((t) => t.met) ? 'met' : 'MISSED';
}

// ---- formatting ------------------------------------------------------------------------------------------

function num(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  if (a === 0) return '0';
  return x.toPrecision(2);
}

export function fmt(value: number, unit: string): string {
  if (unit === '%') return `${num(value)} %`;
  if (unit === '×') return `${num(value)}×`;
  return unit ? `${num(value)} ${unit}` : num(value);
}

function valueText(r: Row): string {
  if (r.status === 'not-implemented') return 'n/a';
  if (r.display) return r.display;
  return r.value === null ? '—' : fmt(r.value, r.unit);
}

function baselineText(r: Row): string {
  return r.baseline ? `${r.baseline.label} ${fmt(r.baseline.value, r.baseline.unit)}` : '';
}

function ratioText(r: Row): string {
  return r.ratio === undefined || r.ratio === null || r.status === 'not-implemented' ? '' : `${num(r.ratio)}×`;
}

function targetText(r: Row): string {
  return r.targets.map((t) => t.text).join('; ');
}

const HEAD = ['case', 'value', 'baseline (same run)', 'ratio', 'target', 'status', 'how'];

function cells(r: Row): string[] {
  return [r.label, valueText(r), baselineText(r), ratioText(r), targetText(r), verdict(r), r.method];
}

/** "42 s; machine 97 % busy, load average 6.1": how much else was running, next to every section's numbers. */
function sectionLoad(s: Section): string {
  const busy = s.context?.machineBusy;
  const load = s.context?.loadavg as number[] | undefined;
  const parts = [`${s.durationS.toFixed(0)} s`];
  if (typeof busy === 'number') parts.push(`machine ${Math.round(busy * 100)} % busy (all CPUs, this bench included)`);
  if (load) parts.push(`load average ${load[0]}`);
  return parts.join('; ');
}

/** The sections as aligned text tables, each followed by its methods. */
export function textReport(sections: Section[]): string {
  const out: string[] = [];
  for (const s of sections) {
    out.push('', `== ${s.title} (${sectionLoad(s)})`);
    if (s.error) out.push(`!! MEASUREMENT FAILED: ${s.error}`);
    if (s.rows.length > 0) {
      const table = [HEAD, ...s.rows.map(cells)];
      const widths = HEAD.map((_, i) => Math.max(...table.map((c) => c[i].length)));
      const line = (c: string[]): string =>
        c.map((x, i) => (i === 1 || i === 3 ? x.padStart(widths[i]) : x.padEnd(widths[i]))).join('  ').trimEnd();
      out.push(line(table[0]), widths.map((w) => '-'.repeat(w)).join('  '));
      for (const c of table.slice(1)) out.push(line(c));
      const notes = s.rows.filter((r) => r.note).map((r) => `  note (${r.label}): ${r.note}`);
      if (notes.length) out.push('', ...notes);
    }
    const used = new Set(s.rows.map((r) => r.method));
    const methods = Object.entries(s.methods).filter(([k]) => used.has(k));
    if (methods.length) {
      out.push('', '  how:');
      for (const [k, v] of methods) out.push(...wrap(`[${k}] ${v}`, 116).map((l, i) => (i === 0 ? `  ${l}` : `      ${l}`)));
    }
  }
  return out.join('\n');
}

function wrap(text: string, width: number): string[] {
  const words = text.split(/\s+/);
  const lines: string[] = [];
  let cur = '';
  for (const w of words) {
    if (cur && cur.length + 1 + w.length > width) {
      lines.push(cur);
      cur = w;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) lines.push(cur);
  return lines;
}

/** The same tables in Markdown, for bench-results/latest.md. */
export function markdownReport(sections: Section[]): string {
  const esc = (x: string): string => x.replace(/\|/g, '\\|');
  const out: string[] = [];
  for (const s of sections) {
    out.push('', `### ${s.title}`, '', `*${sectionLoad(s)}*`, '');
    if (s.error) out.push(`**Measurement failed:** ${esc(s.error)}`, '');
    if (s.rows.length > 0) {
      out.push(`| ${HEAD.join(' | ')} |`, `|${HEAD.map((_, i) => (i === 1 || i === 3 ? ' ---: ' : ' --- ')).join('|')}|`);
      for (const r of s.rows) out.push(`| ${cells(r).map(esc).join(' | ')} |`);
      out.push('');
    }
    const used = new Set(s.rows.map((r) => r.method));
    for (const [k, v] of Object.entries(s.methods).filter(([k2]) => used.has(k2))) out.push(`- **[${k}]** ${esc(v)}`);
    for (const r of s.rows.filter((x) => x.note)) out.push(`- *${esc(r.label)}*: ${esc(r.note!)}`);
  }
  return out.join('\n');
}

export interface TargetTally {
  met: string[];
  missed: string[];
  notImplemented: string[];
}

export function tallyTargets(sections: Section[]): TargetTally {
  const t: TargetTally = { met: [], missed: [], notImplemented: [] };
  for (const s of sections) {
    for (const r of s.rows) {
      if (r.status === 'not-implemented') {
        t.notImplemented.push(r.label);
        continue;
      }
      for (const tg of r.targets) (tg.met ? t.met : t.missed).push(`${r.label}: ${tg.text} (got ${valueText(r)})`);
    }
  }
  return t;
}
