// keepalived.conf's syntax: lines of words, '#' and '!' comments, quoted strings, '{ }' blocks, `include GLOB`,
// read into a tree of statements that each remember their file and line. No meaning here: see ./config.ts.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { ErrorCode, XdpvsError } from '../errors.js';

export interface Loc {
  file: string;
  line: number;
}

export interface Word {
  text: string;
  /** Written in quotes ("..." or '...'): the text is what was inside them, escapes untouched. */
  quoted: boolean;
}

export interface Statement {
  key: string;
  args: Word[];
  loc: Loc;
  /** The statement's `{ ... }` block, if it has one. */
  block?: Statement[];
}

export interface ParseResult {
  statements: Statement[];
  /** Every file read (the main file, then includes in order). */
  files: string[];
  /** Things that are accepted but worth saying: ignored trailing text, empty includes. */
  notices: { loc: Loc; message: string }[];
}

const MAX_INCLUDE_DEPTH = 32;
const INCLUDE_KEYWORDS = new Set(['include', 'includer', 'includem', 'includew', 'includeb', 'includea']);

export function confError(loc: Loc, message: string, code: (typeof ErrorCode)[keyof typeof ErrorCode] = ErrorCode.Invalid): XdpvsError {
  return new XdpvsError(code, `${loc.file}:${loc.line}: ${message}`, { file: loc.file, line: loc.line });
}

interface Line {
  loc: Loc;
  words: (Word & { brace?: '{' | '}' })[];
}

/** Splits one line into words and braces; comments and keepalived's advanced syntax are dealt with here. */
function tokenizeLine(text: string, loc: Loc, notices: ParseResult['notices']): Line['words'] {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('@')) throw confError(loc, 'conditional configuration lines (@ID ...) are not supported');
  if (/^\$[A-Za-z_][A-Za-z0-9_]*\s*=/.test(trimmed)) throw confError(loc, 'parameter definitions ($NAME=...) are not supported');
  if (/^~(SEQ|SEQx|LST)\(/.test(trimmed)) throw confError(loc, 'sequence and list blocks (~SEQ, ~LST) are not supported');
  const words: Line['words'] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '#' || c === '!') break;
    if (c === '{' || c === '}') {
      words.push({ text: c, quoted: false, brace: c });
      i++;
      continue;
    }
    if (c === '/' && text[i + 1] === '/') {
      // Not a comment in keepalived: it reads the words it needs and ignores the rest, as we do, saying so.
      notices.push({ loc, message: `ignored "${text.slice(i).trim()}" ('//' is not a comment in keepalived.conf; keepalived ignores extra words too)` });
      break;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      let inner = '';
      while (j < text.length && text[j] !== c) {
        if (text[j] === '\\' && j + 1 < text.length) {
          inner += text[j] + text[j + 1];
          j += 2;
          continue;
        }
        inner += text[j++];
      }
      if (j >= text.length) throw confError(loc, `unterminated ${c} quote`);
      words.push({ text: inner, quoted: true });
      i = j + 1;
      continue;
    }
    let j = i;
    while (j < text.length && !/\s/.test(text[j]) && text[j] !== '{' && text[j] !== '}' && text[j] !== '#' && text[j] !== '!') j++;
    words.push({ text: text.slice(i, j), quoted: false });
    i = j;
  }
  return words;
}

/** `{a,b}c` -> ["ac", "bc"] (one level at a time, nested by recursion). */
function expandBraces(pattern: string): string[] {
  const m = /\{([^{}]*)\}/.exec(pattern);
  if (!m) return [pattern];
  const out: string[] = [];
  for (const alt of m[1].split(',')) out.push(...expandBraces(pattern.slice(0, m.index) + alt + pattern.slice(m.index + m[0].length)));
  return out;
}

function segmentRegex(seg: string): RegExp {
  let re = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = seg.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        re += '[' + seg.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\') + ']';
        i = end;
      }
    } else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** glob(3) for include: *, ?, [...] per path segment and {a,b}; sorted matches, hidden files only if named. */
export function globFiles(pattern: string): string[] {
  const results = new Set<string>();
  for (const p of expandBraces(pattern)) {
    const abs = isAbsolute(p);
    const segs = p.split('/').filter((s) => s !== '');
    let paths = [abs ? '/' : '.'];
    for (const seg of segs) {
      const next: string[] = [];
      const wild = /[*?[]/.test(seg);
      for (const base of paths) {
        if (!wild) {
          next.push(join(base, seg));
          continue;
        }
        let names: string[];
        try {
          names = readdirSync(base);
        } catch {
          continue;
        }
        const re = segmentRegex(seg);
        for (const n of names.sort()) if (re.test(n) && (!n.startsWith('.') || seg.startsWith('.'))) next.push(join(base, n));
      }
      paths = next;
    }
    for (const f of paths) {
      try {
        if (statSync(f).isFile()) results.add(f);
      } catch {
        /* no such file: a non-matching include */
      }
    }
  }
  return [...results].sort();
}

function readLines(file: string, depth: number, lines: Line[], files: string[], notices: ParseResult['notices'], from?: Loc): void {
  if (depth > MAX_INCLUDE_DEPTH) throw confError(from!, `includes nested deeper than ${MAX_INCLUDE_DEPTH} (a loop?)`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const msg = `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    throw from ? confError(from, msg) : new XdpvsError(ErrorCode.Invalid, msg, { file });
  }
  files.push(file);
  const raw = text.split(/\r?\n/);
  for (let n = 0; n < raw.length; n++) {
    const loc = { file, line: n + 1 };
    const words = tokenizeLine(raw[n], loc, notices);
    if (words.length === 0) continue;
    if (!words[0].quoted && INCLUDE_KEYWORDS.has(words[0].text)) {
      if (words.length < 2) throw confError(loc, `${words[0].text} needs a file name or pattern`);
      const pattern = isAbsolute(words[1].text) ? words[1].text : resolve(dirname(file), words[1].text);
      const matched = globFiles(pattern);
      if (matched.length === 0) {
        if (words[0].text === 'include' || words[0].text === 'includer') notices.push({ loc, message: `include ${words[1].text}: no file matches` });
        else throw confError(loc, `${words[0].text} ${words[1].text}: no file matches`);
      }
      for (const f of matched) readLines(f, depth + 1, lines, files, notices, loc);
      continue;
    }
    lines.push({ loc, words });
  }
}

/** Reads FILE (and what it includes) into statements. Throws XdpvsError with "FILE:LINE: ..." messages. */
export function parseKeepalivedFile(file: string): ParseResult {
  const lines: Line[] = [];
  const files: string[] = [];
  const notices: ParseResult['notices'] = [];
  readLines(resolve(file), 0, lines, files, notices);
  return { statements: buildTree(lines), files, notices };
}

/** Parses text as if it were a file (tests). */
export function parseKeepalivedText(text: string, name = 'keepalived.conf'): ParseResult {
  const notices: ParseResult['notices'] = [];
  const lines: Line[] = [];
  text.split(/\r?\n/).forEach((l, n) => {
    const words = tokenizeLine(l, { file: name, line: n + 1 }, notices);
    if (words.length) lines.push({ loc: { file: name, line: n + 1 }, words });
  });
  return { statements: buildTree(lines), files: [name], notices };
}

/**
 * Statements start at the beginning of a line (or after a brace on it); '{' opens the block of the statement
 * before it (on the same line, or the last one when it stands alone), '}' closes the innermost block.
 */
function buildTree(lines: Line[]): Statement[] {
  const root: Statement[] = [];
  const stack: { list: Statement[]; owner?: Statement }[] = [{ list: root }];
  for (const { loc, words } of lines) {
    let current: Statement | undefined;
    for (const w of words) {
      const top = stack[stack.length - 1];
      if (w.brace === '{') {
        const owner = current ?? top.list[top.list.length - 1];
        if (!owner || owner.block) throw confError(loc, "'{' without a keyword before it");
        owner.block = [];
        stack.push({ list: owner.block, owner });
        current = undefined;
      } else if (w.brace === '}') {
        if (stack.length === 1) throw confError(loc, "'}' without a block to close");
        stack.pop();
        current = undefined;
      } else if (!current) {
        current = { key: w.text, args: [], loc };
        top.list.push(current);
      } else current.args.push({ text: w.text, quoted: w.quoted });
    }
  }
  if (stack.length > 1) {
    const open = stack[stack.length - 1].owner!;
    throw confError(open.loc, `block of "${open.key}" is never closed`);
  }
  return root;
}
