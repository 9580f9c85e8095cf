/**
 * containerd's filter syntax (its `filters` package), as `ctr snapshots ls` and the
 * List RPC use it on snapshot infos:
 *
 *   filter   := selector [ op value ] ( "," selector [ op value ] )*   (all must hold)
 *   selector := field ( "." field )*    a field may be "quoted" (label keys with dots)
 *   op       := "==" | "!=" | "~="      (~= is a regular expression match)
 *   value    := bare text up to the next comma, or "quoted" (backslash escapes)
 *
 * A selector without an operator asks that the field be present and non-empty. Several
 * filters in one request are alternatives (any may match). Fields of a snapshot: name,
 * parent, kind (view|active|committed) and labels.KEY.
 */
import { LayerfsError } from '../core/errors.js';

/** What a filter sees of a snapshot. */
export interface FilterTarget {
  name: string;
  parent: string;
  kind: string;
  labels: Record<string, string>;
}

interface Clause {
  path: string[];
  op?: '==' | '!=' | '~=';
  value?: string;
  regex?: RegExp;
}

/** A parsed filter list; `matches` is true for an empty list. */
export interface SnapshotFilter {
  matches(t: FilterTarget): boolean;
}

function bad(filter: string, why: string): LayerfsError {
  return new LayerfsError('INVALID_ARGUMENT', `filter ${JSON.stringify(filter)}: ${why}`);
}

/** Reads a quoted string starting at s[i] === '"'; returns the text and the index after it. */
function readQuoted(filter: string, s: string, i: number): [string, number] {
  let out = '';
  for (let j = i + 1; j < s.length; j++) {
    const c = s[j]!;
    if (c === '\\' && j + 1 < s.length) out += s[++j];
    else if (c === '"') return [out, j + 1];
    else out += c;
  }
  throw bad(filter, 'unterminated quote');
}

function parseOne(filter: string): Clause[] {
  const clauses: Clause[] = [];
  let i = 0;
  const s = filter;
  while (i < s.length) {
    const path: string[] = [];
    // selector
    for (;;) {
      if (s[i] === '"') {
        const [text, next] = readQuoted(filter, s, i);
        path.push(text);
        i = next;
      } else {
        const m = /^[A-Za-z0-9_/-]+/.exec(s.slice(i));
        if (!m) throw bad(filter, `expected a field name at offset ${i}`);
        path.push(m[0]);
        i += m[0].length;
      }
      if (s[i] === '.') i++;
      else break;
    }
    const clause: Clause = { path };
    const op = s.slice(i, i + 2);
    if (op === '==' || op === '!=' || op === '~=') {
      i += 2;
      let value: string;
      if (s[i] === '"') [value, i] = readQuoted(filter, s, i);
      else {
        const end = s.indexOf(',', i);
        value = s.slice(i, end < 0 ? s.length : end);
        i = end < 0 ? s.length : end;
      }
      clause.op = op;
      clause.value = value;
      if (op === '~=') {
        try {
          clause.regex = new RegExp(value);
        } catch {
          throw bad(filter, `bad regular expression ${value}`);
        }
      }
    }
    clauses.push(clause);
    if (i < s.length) {
      if (s[i] !== ',') throw bad(filter, `unexpected ${JSON.stringify(s[i])} at offset ${i}`);
      i++;
    }
  }
  return clauses;
}

function field(t: FilterTarget, path: string[]): string | undefined {
  const [head, ...rest] = path;
  if (head === 'labels') return rest.length === 0 ? undefined : t.labels[rest.join('.')];
  if (rest.length > 0) return undefined;
  if (head === 'name') return t.name;
  if (head === 'parent') return t.parent;
  if (head === 'kind') return t.kind;
  return undefined;
}

function holds(c: Clause, t: FilterTarget): boolean {
  const v = field(t, c.path);
  if (c.op === undefined) return v !== undefined && v !== '';
  if (v === undefined) return false;
  if (c.op === '==') return v === c.value;
  if (c.op === '!=') return v !== c.value;
  return c.regex!.test(v);
}

/** Parses List's filters (INVALID_ARGUMENT on a syntax error). */
export function parseFilters(filters: string[]): SnapshotFilter {
  const alternatives = filters.filter((f) => f.trim() !== '').map(parseOne);
  return {
    matches: (t) => alternatives.length === 0 || alternatives.some((clauses) => clauses.every((c) => holds(c, t))),
  };
}
