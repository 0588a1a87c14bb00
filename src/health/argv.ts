// Splits a keepalived script string ("/path/prog arg 'an arg with spaces'") into argv, the way keepalived does for
// misc_path and notify scripts: whitespace separates, single or double quotes group, backslash escapes. No shell.

const ESCAPES: Record<string, string> = { a: '\x07', b: '\b', E: '\x1b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

export class ArgvError extends Error {}

export function splitArgv(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length) {
      const n = text[++i];
      inWord = true;
      if (n in ESCAPES) cur += ESCAPES[n];
      else if (n === 'x' && /^[0-9a-fA-F]/.test(text[i + 1] ?? '')) {
        const m = /^[0-9a-fA-F]{1,2}/.exec(text.slice(i + 1))![0];
        cur += String.fromCharCode(parseInt(m, 16));
        i += m.length;
      } else if (/[0-7]/.test(n)) {
        const m = /^[0-7]{1,3}/.exec(text.slice(i))![0];
        cur += String.fromCharCode(parseInt(m, 8));
        i += m.length - 1;
      } else cur += n;
      continue;
    }
    if (quote) {
      if (c === quote) quote = null;
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
      continue;
    }
    if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    cur += c;
    inWord = true;
  }
  if (quote) throw new ArgvError(`unterminated ${quote} quote in "${text}"`);
  if (inWord) out.push(cur);
  return out;
}
