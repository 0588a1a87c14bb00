// The /docs page: the OpenAPI document rendered server-side as one plain HTML page (no scripts, nothing external).

import type { OpenApiDocument } from './openapi.js';

type Json = Record<string, unknown>;

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const refName = (ref: string): string => ref.slice(ref.lastIndexOf('/') + 1);
const anchor = (kind: string, name: string): string => `${kind}-${name.replace(/[^A-Za-z0-9]+/g, '-')}`;
const opAnchor = (method: string, path: string): string => anchor('op', `${method}${path}`);

/** A schema's type in a few words, with links to named components. */
function typeText(schema: Json | undefined): string {
  if (!schema) return '';
  if (typeof schema.$ref === 'string') {
    const n = refName(schema.$ref);
    return `<a href="#${anchor('schema', n)}">${escapeHtml(n)}</a>`;
  }
  let t: string;
  if (Array.isArray(schema.enum)) t = schema.enum.map((v) => `<code>${escapeHtml(JSON.stringify(v))}</code>`).join(' | ');
  else if (schema.type === 'array') t = `array of ${typeText(schema.items as Json)}`;
  else if (schema.type === 'object' && schema.additionalProperties && typeof schema.additionalProperties === 'object' && !schema.properties) {
    t = `map of string to ${typeText(schema.additionalProperties as Json)}`;
  } else t = escapeHtml(String(schema.type ?? 'any'));
  const range = [schema.minimum, schema.maximum].some((v) => v !== undefined) ? ` ${schema.minimum ?? ''}..${schema.maximum ?? ''}` : '';
  const len = schema.minLength !== undefined ? ` (at least ${String(schema.minLength)} character${schema.minLength === 1 ? '' : 's'})` : '';
  return t + escapeHtml(range + len) + (schema.nullable ? ' or null' : '');
}

/** The fields of an object schema as table rows. */
function fieldRows(schema: Json): string {
  const props = (schema.properties ?? {}) as Record<string, Json>;
  const required = new Set((schema.required ?? []) as string[]);
  return Object.entries(props)
    .map(
      ([name, p]) =>
        `<tr><td><code>${escapeHtml(name)}</code></td><td>${typeText(p)}</td><td>${required.has(name) ? 'yes' : 'no'}</td>` +
        `<td>${escapeHtml(String(p.description ?? ''))}</td></tr>`,
    )
    .join('\n');
}

function schemaBlock(name: string, schema: Json): string {
  const head = `<h3 id="${anchor('schema', name)}">${escapeHtml(name)}</h3>`;
  const desc = schema.description ? `<p>${escapeHtml(String(schema.description))}</p>` : '';
  if (schema.type !== 'object' || !schema.properties) return `${head}${desc}<p>${typeText(schema)}</p>`;
  const extra =
    schema.additionalProperties === false ? '<p class="note">No other fields are accepted.</p>' : '';
  return (
    `${head}${desc}<table><thead><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr></thead>` +
    `<tbody>${fieldRows(schema)}</tbody></table>${extra}`
  );
}

function mediaSchema(content: unknown): { type: string; schema: Json | undefined } | undefined {
  if (!content || typeof content !== 'object') return undefined;
  const [type, media] = Object.entries(content as Record<string, Json>)[0] ?? [];
  return type ? { type, schema: media?.schema as Json | undefined } : undefined;
}

function operationBlock(path: string, method: string, op: Json, doc: OpenApiDocument): string {
  const parts: string[] = [];
  const secured = Array.isArray(op.security) && op.security.length > 0;
  parts.push(
    `<section class="op" id="${opAnchor(method, path)}"><h3><span class="m ${method}">${method.toUpperCase()}</span> ` +
      `<code>${escapeHtml(path)}</code></h3>`,
  );
  parts.push(`<p>${escapeHtml(String(op.summary ?? ''))}${op.description ? ' ' + escapeHtml(String(op.description)) : ''}</p>`);
  parts.push(`<p class="note">${secured ? 'Needs <code>Authorization: Bearer &lt;token&gt;</code>.' : 'Open (no token).'}</p>`);

  const params = (op.parameters ?? []) as Json[];
  if (params.length) {
    parts.push('<h4>Parameters</h4><table><thead><tr><th>name</th><th>in</th><th>type</th><th>description</th><th>example</th></tr></thead><tbody>');
    for (const p of params) {
      const s = (p.schema ?? {}) as Json;
      parts.push(
        `<tr><td><code>${escapeHtml(String(p.name))}</code></td><td>${escapeHtml(String(p.in))}</td><td>${typeText(s)}</td>` +
          `<td>${escapeHtml(String(p.description ?? s.description ?? ''))}</td><td><code>${escapeHtml(String(p.example ?? s.example ?? ''))}</code></td></tr>`,
      );
    }
    parts.push('</tbody></table>');
  }

  const body = mediaSchema((op.requestBody as Json | undefined)?.content);
  if (body?.schema) {
    parts.push(`<h4>Request body (${escapeHtml(body.type)})</h4>`);
    const ref = typeof body.schema.$ref === 'string' ? refName(body.schema.$ref) : undefined;
    const target = ref ? ((doc.components?.schemas ?? {}) as Record<string, Json>)[ref] : body.schema;
    parts.push(ref ? `<p>${typeText(body.schema)}</p>` : '');
    if (target?.properties) {
      parts.push(`<table><thead><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr></thead><tbody>${fieldRows(target)}</tbody></table>`);
    }
  }

  parts.push('<h4>Responses</h4><table><thead><tr><th>status</th><th>body</th><th>when</th></tr></thead><tbody>');
  for (const [status, r] of Object.entries((op.responses ?? {}) as Record<string, Json>)) {
    const m = mediaSchema(r.content);
    const bodyText = m ? `${typeText(m.schema)}${m.type === 'application/json' ? '' : ` (${escapeHtml(m.type)})`}` : '—';
    parts.push(`<tr><td>${escapeHtml(status)}</td><td>${bodyText}</td><td>${escapeHtml(String(r.description ?? ''))}</td></tr>`);
  }
  parts.push('</tbody></table></section>');
  return parts.join('\n');
}

const STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #1d1d1f; }
code { font: 13px ui-monospace, monospace; background: #f2f2f4; padding: 0 .2em; border-radius: 3px; }
table { border-collapse: collapse; margin: .4rem 0 1rem; width: 100%; }
th, td { border: 1px solid #d8d8dc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f7f7f9; }
.op { border-top: 1px solid #d8d8dc; padding-top: .5rem; }
.m { display: inline-block; min-width: 4.2em; text-align: center; color: #fff; border-radius: 3px; font-size: 13px; padding: .1em .3em; }
.get { background: #2f6fb7; } .post { background: #2e8b57; } .put, .patch { background: #b7792f; } .delete { background: #b73a2f; }
.note { color: #55555a; font-size: 14px; }
`;

/** The whole page. Everything comes from the document, so the page cannot say something the document does not. */
export function renderDocsPage(doc: OpenApiDocument): string {
  const title = `${doc.info.title} ${doc.info.version} — HTTP API`;
  const ops: { tag: string; path: string; method: string; op: Json }[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {}) as [string, Json][]) {
    for (const method of METHODS) {
      const op = item[method] as Json | undefined;
      if (op) ops.push({ tag: ((op.tags as string[] | undefined) ?? ['other'])[0], path, method, op });
    }
  }
  const tags = (doc.tags ?? []).map((t) => t.name).filter((t) => ops.some((o) => o.tag === t));
  for (const o of ops) if (!tags.includes(o.tag)) tags.push(o.tag);

  const out: string[] = [];
  out.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">`);
  out.push(`<title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>`);
  out.push(`<h1>${escapeHtml(title)}</h1><p>${escapeHtml(doc.info.description ?? '')}</p>`);
  out.push('<p class="note">Generated from <a href="/openapi.json">/openapi.json</a> (OpenAPI ' + escapeHtml(doc.openapi) + ').</p>');
  for (const s of doc.servers ?? []) out.push(`<p class="note">Server: <code>${escapeHtml(s.url)}</code> ${escapeHtml(s.description ?? '')}</p>`);

  out.push('<h2 id="routes">Routes</h2><table><thead><tr><th>method</th><th>path</th><th>what</th></tr></thead><tbody>');
  for (const tag of tags) {
    for (const o of ops.filter((x) => x.tag === tag)) {
      out.push(
        `<tr><td><span class="m ${o.method}">${o.method.toUpperCase()}</span></td>` +
          `<td><a href="#${opAnchor(o.method, o.path)}"><code>${escapeHtml(o.path)}</code></a></td><td>${escapeHtml(String(o.op.summary ?? ''))}</td></tr>`,
      );
    }
  }
  out.push('</tbody></table>');

  for (const tag of tags) {
    const t = (doc.tags ?? []).find((x) => x.name === tag);
    out.push(`<h2 id="${anchor('tag', tag)}">${escapeHtml(tag)}</h2>${t?.description ? `<p>${escapeHtml(t.description)}</p>` : ''}`);
    for (const o of ops.filter((x) => x.tag === tag)) out.push(operationBlock(o.path, o.method, o.op, doc));
  }

  out.push('<h2 id="schemas">Schemas</h2>');
  for (const [name, schema] of Object.entries((doc.components?.schemas ?? {}) as Record<string, Json>)) out.push(schemaBlock(name, schema));
  out.push('</body></html>');
  return out.join('\n') + '\n';
}
