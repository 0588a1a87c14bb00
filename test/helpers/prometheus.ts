// A small parser of the Prometheus text exposition format, for tests of /metrics.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  /** TYPE and HELP of each metric family, in order of appearance. */
  types: Map<string, string>;
  helps: Map<string, string>;
  /** The value of the one series with exactly these labels; undefined when there is none. */
  value(name: string, labels?: Record<string, string>): number | undefined;
}

export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helps = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    let m = /^# (TYPE|HELP) (\S+) (.*)$/.exec(line);
    if (m) {
      (m[1] === 'TYPE' ? types : helps).set(m[2], m[3]);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  const key = (labels: Record<string, string>) => JSON.stringify(Object.entries(labels).sort());
  return {
    samples,
    types,
    helps,
    value(name, labels = {}) {
      const hits = samples.filter((s) => s.name === name && key(s.labels) === key(labels));
      if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${hits.length} series`);
      return hits[0]?.value;
    },
  };
}
