/**
 * The subset of Go's text/template that `docker … --format` users write, for `ps`,
 * `images` and `inspect --format`. No npm package fits: the JavaScript ports found lack
 * pipelines, `json`, comparisons and custom functions, which are most of what Docker
 * users type (`{{json .}}`, `{{.ID}}\t{{.Names}}`, `{{if eq .State "running"}}…`).
 *
 * Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming and comments; fields
 * (`.A.B`, `.`, `$`, `$.A`), string/raw/number/bool literals, parenthesised pipelines,
 * `a | f b`; `if`/`else if`/`else`, `range` (arrays and objects, with `else`), `with`;
 * Docker's functions json, join, split, lower, upper, title, truncate, pad, println,
 * and Go's print, printf (%s %d %v %q %%), len, index, eq, ne, lt, le, gt, ge, and, or, not.
 * Values print as Go prints them: `[a b]`, `map[k:v]`, `<no value>` for a missing map key.
 * A `table ` prefix and `\t` escapes (as in docker) are handled by the caller (verbs/format.ts).
 */
import { LayerfsError } from '../core/errors.js';

type Value = unknown;

type Node =
  | { t: 'text'; text: string }
  | { t: 'action'; pipe: Pipe }
  | { t: 'if' | 'with'; pipe: Pipe; then: Node[]; else: Node[] }
  | { t: 'range'; pipe: Pipe; body: Node[]; else: Node[] };
type Pipe = Cmd[];
type Cmd = Arg[];
type Arg =
  | { t: 'field'; root: boolean; path: string[] }
  | { t: 'lit'; v: Value }
  | { t: 'fn'; name: string }
  | { t: 'pipe'; pipe: Pipe };

function bad(msg: string): LayerfsError {
  return new LayerfsError('INVALID_ARGUMENT', `invalid --format: ${msg}`);
}

// ---------- lexing one action ----------

function tokenize(src: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
      if (j >= src.length) throw bad(`unterminated string in {{${src}}}`);
      out.push(src.slice(i, j + 1));
      i = j + 1;
    } else if (c === '`') {
      const j = src.indexOf('`', i + 1);
      if (j < 0) throw bad(`unterminated raw string in {{${src}}}`);
      out.push(src.slice(i, j + 1));
      i = j + 1;
    } else if ('()|'.includes(c)) {
      out.push(c);
      i++;
    } else {
      let j = i;
      while (j < src.length && !/[\s()|"`]/.test(src[j]!)) j++;
      out.push(src.slice(i, j));
      i = j;
    }
  }
  return out;
}

function parsePipe(tokens: string[], pos: { i: number }, inParens: boolean): Pipe {
  const pipe: Pipe = [];
  let cmd: Cmd = [];
  while (pos.i < tokens.length) {
    const tok = tokens[pos.i++]!;
    if (tok === ')') {
      if (!inParens) throw bad('unexpected )');
      break;
    }
    if (tok === '|') {
      if (!cmd.length) throw bad('missing command before |');
      pipe.push(cmd);
      cmd = [];
      continue;
    }
    if (tok === '(') {
      cmd.push({ t: 'pipe', pipe: parsePipe(tokens, pos, true) });
      continue;
    }
    cmd.push(parseArg(tok));
  }
  if (!cmd.length) throw bad(pipe.length ? 'missing command after |' : 'empty action');
  pipe.push(cmd);
  return pipe;
}

function parseArg(tok: string): Arg {
  if (tok.startsWith('"')) return { t: 'lit', v: JSON.parse(tok) as string };
  if (tok.startsWith('`')) return { t: 'lit', v: tok.slice(1, -1) };
  if (tok === 'true' || tok === 'false') return { t: 'lit', v: tok === 'true' };
  if (tok === 'nil') return { t: 'lit', v: null };
  if (/^-?\d+(\.\d+)?$/.test(tok)) return { t: 'lit', v: Number(tok) };
  if (tok === '.') return { t: 'field', root: false, path: [] };
  if (tok === '$') return { t: 'field', root: true, path: [] };
  if (tok.startsWith('$.')) return { t: 'field', root: true, path: tok.slice(2).split('.') };
  if (tok.startsWith('.')) {
    const path = tok.slice(1).split('.');
    if (path.some((p) => !/^\w+$/.test(p))) throw bad(`bad field ${tok}`);
    return { t: 'field', root: false, path };
  }
  if (!(tok in FUNCS)) throw bad(`function "${tok}" not defined`);
  return { t: 'fn', name: tok };
}

// ---------- parsing the template ----------

/** Splits text and actions, applying `{{-` and `-}}` trimming; comments dropped. */
function scan(src: string): Array<{ text: string } | { action: string }> {
  const out: Array<{ text: string } | { action: string }> = [];
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    if (open < 0) {
      out.push({ text: src.slice(i) });
      break;
    }
    let text = src.slice(i, open);
    let start = open + 2;
    if (src.startsWith('- ', start) || src.startsWith('-\t', start) || src.startsWith('-\n', start)) {
      text = text.replace(/\s+$/, '');
      start++;
    }
    const close = src.indexOf('}}', start);
    if (close < 0) throw bad('unclosed action {{');
    let body = src.slice(start, close);
    let next = close + 2;
    if (/\s-$/.test(body)) {
      body = body.slice(0, -1);
      const m = /^\s*/.exec(src.slice(next))!;
      next += m[0].length;
    }
    if (text) out.push({ text });
    if (!/^\s*\/\*[\s\S]*\*\/\s*$/.test(body)) out.push({ action: body.trim() });
    i = next;
  }
  return out;
}

function parseTemplate(src: string): Node[] {
  const items = scan(src);
  const pos = { i: 0 };
  const nodes = parseList(items, pos, new Set());
  if (pos.i < items.length) throw bad(`unexpected {{${(items[pos.i] as { action: string }).action}}}`);
  return nodes;
}

/** Parses nodes until one of `stops` (`end`, `else…`) and leaves pos on it. */
function parseList(items: ReturnType<typeof scan>, pos: { i: number }, stops: Set<string>): Node[] {
  const nodes: Node[] = [];
  while (pos.i < items.length) {
    const it = items[pos.i]!;
    if ('text' in it) {
      nodes.push({ t: 'text', text: it.text });
      pos.i++;
      continue;
    }
    const word = it.action.split(/\s+/)[0]!;
    if (word === 'end' || word === 'else') {
      if (!stops.size) throw bad(`unexpected {{${it.action}}}`);
      return nodes;
    }
    pos.i++;
    if (word === 'if' || word === 'with' || word === 'range') nodes.push(parseBlock(word, it.action.slice(word.length), items, pos));
    else nodes.push({ t: 'action', pipe: parsePipe(tokenize(it.action), { i: 0 }, false) });
  }
  if (stops.size) throw bad('missing {{end}}');
  return nodes;
}

function parseBlock(word: 'if' | 'with' | 'range', rest: string, items: ReturnType<typeof scan>, pos: { i: number }): Node {
  const pipe = parsePipe(tokenize(rest), { i: 0 }, false);
  const body = parseList(items, pos, new Set(['end', 'else']));
  const stop = (items[pos.i] as { action: string }).action;
  pos.i++;
  let elseNodes: Node[] = [];
  if (stop.startsWith('else')) {
    const elseRest = stop.slice(4).trim();
    if (elseRest.startsWith('if ') && word === 'if') {
      // {{else if X}} … is {{else}}{{if X}} … {{end}} sharing the outer {{end}}.
      elseNodes = [parseBlock('if', elseRest.slice(2), items, pos)];
      return { t: 'if', pipe, then: body, else: elseNodes };
    }
    if (elseRest) throw bad(`unexpected {{${stop}}}`);
    elseNodes = parseList(items, pos, new Set(['end']));
    const end = items[pos.i] as { action: string } | undefined;
    if (!end || end.action !== 'end') throw bad('missing {{end}}');
    pos.i++;
  }
  return word === 'range' ? { t: 'range', pipe, body, else: elseNodes } : { t: word, pipe, then: body, else: elseNodes };
}

// ---------- values ----------

const NO_VALUE = Symbol('no value');

function truthy(v: Value): boolean {
  if (v === NO_VALUE || v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

/** A value as Go's fmt prints it with %v. */
export function goString(v: Value): string {
  if (v === NO_VALUE) return '<no value>';
  if (v === null || v === undefined) return '<nil>';
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return `[${v.map(goString).join(' ')}]`;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `map[${Object.keys(o).sort().map((k) => `${k}:${goString(o[k])}`).join(' ')}]`;
  }
  return String(v);
}

function field(v: Value, name: string, where: string): Value {
  if (v === NO_VALUE || v === null || v === undefined) return NO_VALUE;
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if (Object.hasOwn(o, name)) return o[name];
    return NO_VALUE;
  }
  throw bad(`can't evaluate field ${name} in ${where}: not an object`);
}

function cmp(a: Value, b: Value): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  throw bad(`incompatible types for comparison: ${goString(a)} and ${goString(b)}`);
}

function printf(format: string, args: Value[]): string {
  let n = 0;
  return format.replace(/%([-+ 0#]*\d*)([sdvq%])/g, (_m, flags: string, verb: string) => {
    if (verb === '%') return '%';
    const a = args[n++];
    const s = verb === 'q' ? JSON.stringify(goString(a)) : verb === 'd' ? String(Math.trunc(Number(a))) : goString(a);
    const width = Number(flags.replace(/[^\d]/g, '')) || 0;
    return flags.includes('-') ? s.padEnd(width) : s.padStart(width);
  });
}

const FUNCS: Record<string, (...a: Value[]) => Value> = {
  json: (v) => JSON.stringify(v === NO_VALUE ? null : v),
  join: (list, sep) => (Array.isArray(list) ? list.map(goString).join(goString(sep)) : goString(list)),
  split: (s, sep) => goString(s).split(goString(sep)),
  lower: (s) => goString(s).toLowerCase(),
  upper: (s) => goString(s).toUpperCase(),
  title: (s) => goString(s).replace(/\b\w/g, (c) => c.toUpperCase()),
  truncate: (s, n) => [...goString(s)].slice(0, Number(n)).join(''),
  pad: (s, l, r) => `${' '.repeat(Number(l))}${goString(s)}${' '.repeat(Number(r))}`,
  println: (...a) => `${a.map(goString).join(' ')}\n`,
  print: (...a) => a.map(goString).join(''),
  printf: (f, ...a) => printf(goString(f), a),
  len: (v) => (typeof v === 'string' || Array.isArray(v) ? v.length : v && typeof v === 'object' ? Object.keys(v).length : 0),
  index: (v, ...keys) => keys.reduce<Value>((cur, k) => (Array.isArray(cur) ? cur[Number(k)] : cur && typeof cur === 'object' ? ((cur as Record<string, unknown>)[goString(k)] ?? NO_VALUE) : NO_VALUE), v),
  eq: (a, ...bs) => bs.some((b) => a === b),
  ne: (a, b) => a !== b,
  lt: (a, b) => cmp(a, b) < 0,
  le: (a, b) => cmp(a, b) <= 0,
  gt: (a, b) => cmp(a, b) > 0,
  ge: (a, b) => cmp(a, b) >= 0,
  and: (...a) => a.find((v) => !truthy(v)) ?? a[a.length - 1],
  or: (...a) => a.find((v) => truthy(v)) ?? a[a.length - 1],
  not: (v) => !truthy(v),
};

// ---------- execution ----------

function evalPipe(pipe: Pipe, dot: Value, root: Value): Value {
  let prev: Value | typeof NO_VALUE | undefined;
  let first = true;
  for (const cmd of pipe) {
    const extra = first ? [] : [prev];
    prev = evalCmd(cmd, dot, root, extra);
    first = false;
  }
  return prev;
}

function evalArg(a: Arg, dot: Value, root: Value): Value {
  if (a.t === 'lit') return a.v;
  if (a.t === 'pipe') return evalPipe(a.pipe, dot, root);
  if (a.t === 'fn') return FUNCS[a.name]!();
  let v = a.root ? root : dot;
  for (const [i, p] of a.path.entries()) v = field(v, p, `.${a.path.slice(0, i).join('.')}`);
  return v;
}

function evalCmd(cmd: Cmd, dot: Value, root: Value, piped: Value[]): Value {
  const head = cmd[0]!;
  if (head.t === 'fn') {
    const args = [...cmd.slice(1).map((a) => evalArg(a, dot, root)), ...piped];
    return FUNCS[head.name]!(...args);
  }
  if (cmd.length > 1 || piped.length) throw bad(`can't give arguments to a non-function ${head.t === 'field' ? `.${head.path.join('.')}` : 'value'}`);
  return evalArg(head, dot, root);
}

function exec(nodes: Node[], dot: Value, root: Value, out: string[]): void {
  for (const n of nodes) {
    if (n.t === 'text') out.push(n.text);
    else if (n.t === 'action') out.push(goString(evalPipe(n.pipe, dot, root)));
    else if (n.t === 'range') {
      const v = evalPipe(n.pipe, dot, root);
      const items = Array.isArray(v) ? v : v && typeof v === 'object' ? Object.keys(v).sort().map((k) => (v as Record<string, unknown>)[k]) : [];
      if (!items.length) exec(n.else, dot, root, out);
      for (const item of items) exec(n.body, item, root, out);
    } else if (n.t === 'if') exec(truthy(evalPipe(n.pipe, dot, root)) ? n.then : n.else, dot, root, out);
    else {
      const v = evalPipe(n.pipe, dot, root);
      if (truthy(v)) exec(n.then, v, root, out);
      else exec(n.else, dot, root, out);
    }
  }
}

/** A parsed template: parse once, render per row. */
export interface GoTemplate {
  render(data: Value): string;
}

/** Parses `src`; errors are LayerfsError INVALID_ARGUMENT ("invalid --format: …", a usage error). */
export function compileTemplate(src: string): GoTemplate {
  const nodes = parseTemplate(src);
  return {
    render(data: Value): string {
      const out: string[] = [];
      exec(nodes, data, data, out);
      return out.join('');
    },
  };
}
