/**
 * Docker's word rules for instruction arguments (moby's shell lexer, `ProcessWord`):
 * quotes are removed, `\` escapes the next character outside single quotes, and `$VAR`,
 * `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}` and `${VAR:?msg}`
 * are expanded from the build's variables (ENV and ARG), not from a shell. RUN, CMD and
 * ENTRYPOINT are never expanded here: their shell does it in the container.
 *
 * The escape character follows the Dockerfile's `# escape=` directive.
 */
import { LayerfsError } from '../core/errors.js';

/** Variables visible to an instruction: name → value. */
export type Vars = ReadonlyMap<string, string>;

/** Options shared by the lexer functions. */
export interface LexOptions {
  escape: string;
  /** Names expanded (and so part of what a step depends on) are added here. */
  used?: Set<string>;
}

const NAME = /[A-Za-z0-9_]/;

/** Expands `$…` at `s[i]` (s[i] === '$'); returns the text and the index after it. */
function expandVar(s: string, i: number, vars: Vars, o: LexOptions): [string, number] {
  const lookup = (name: string): string | undefined => {
    o.used?.add(name);
    return vars.get(name);
  };
  if (s[i + 1] === '{') {
    const close = matchingBrace(s, i + 1);
    if (close < 0) throw new LayerfsError('INVALID_ARGUMENT', `missing '}' in ${JSON.stringify(s)}`);
    const body = s.slice(i + 2, close);
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+?])([\s\S]*))?$/.exec(body);
    if (!m) throw new LayerfsError('INVALID_ARGUMENT', `bad substitution \${${body}} in ${JSON.stringify(s)}`);
    const [, name, op, word = ''] = m;
    const value = lookup(name!);
    const colon = op?.startsWith(':') ?? false;
    const isSet = value !== undefined && (!colon || value !== '');
    const nested = (): string => processWord(word, vars, o);
    switch (op?.replace(':', '')) {
      case undefined:
        return [value ?? '', close + 1];
      case '-':
        return [isSet ? value! : nested(), close + 1];
      case '+':
        return [isSet ? nested() : '', close + 1];
      default: // '?'
        if (!isSet) throw new LayerfsError('INVALID_ARGUMENT', `${name}: ${word ? nested() : 'is not allowed to be unset'}`);
        return [value!, close + 1];
    }
  }
  let j = i + 1;
  while (j < s.length && NAME.test(s[j]!)) j++;
  if (j === i + 1) return ['$', i + 1];
  return [lookup(s.slice(i + 1, j)) ?? '', j];
}

function matchingBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === '{') depth++;
    else if (s[i] === '}' && --depth === 0) return i;
  }
  return -1;
}

/**
 * Splits `s` into words at unquoted whitespace, removing quotes and expanding variables
 * (Docker's `ProcessWords`; with `vars` undefined nothing is expanded and `$` stays).
 */
export function processWords(s: string, vars: Vars | undefined, o: LexOptions, split = true): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  const esc = o.escape;
  while (i < s.length) {
    const c = s[i]!;
    if (split && /\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      i++;
      continue;
    }
    inWord = true;
    if (c === esc) {
      if (i + 1 < s.length) cur += s[i + 1];
      i += 2;
    } else if (c === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) throw new LayerfsError('INVALID_ARGUMENT', `unexpected end of statement while looking for matching single-quote in ${JSON.stringify(s)}`);
      cur += s.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= s.length) throw new LayerfsError('INVALID_ARGUMENT', `unexpected end of statement while looking for matching double-quote in ${JSON.stringify(s)}`);
        const d = s[i]!;
        if (d === '"') {
          i++;
          break;
        }
        if (d === esc && i + 1 < s.length && ['"', '$', esc].includes(s[i + 1]!)) {
          cur += s[i + 1];
          i += 2;
        } else if (d === '$' && vars) {
          const [v, next] = expandVar(s, i, vars, o);
          cur += v;
          i = next;
        } else {
          cur += d;
          i++;
        }
      }
    } else if (c === '$' && vars) {
      const [v, next] = expandVar(s, i, vars, o);
      cur += v;
      i = next;
    } else {
      cur += c;
      i++;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** One word, quotes removed and variables expanded (Docker's `ProcessWord`); whitespace is kept. */
export function processWord(s: string, vars: Vars | undefined, o: LexOptions): string {
  return processWords(s, vars, o, false).join('');
}

/**
 * Splits `s` into words at unquoted whitespace keeping quotes and escapes as written
 * (Docker's `parseWords`, used before `KEY=VALUE` pairs are split).
 */
export function rawWords(s: string, escape: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (!quote && /\s/.test(c)) {
      if (cur) words.push(cur);
      cur = '';
      continue;
    }
    if (c === escape && quote !== "'" && i + 1 < s.length) {
      cur += c + s[i + 1];
      i++;
      continue;
    }
    if (quote && c === quote) quote = undefined;
    else if (!quote && (c === '"' || c === "'")) quote = c;
    cur += c;
  }
  if (cur) words.push(cur);
  return words;
}

/**
 * `KEY=VALUE …` pairs of ENV, LABEL and ARG, or the legacy `KEY VALUE` form (one pair,
 * the rest of the line the value). Values come back raw; expand them with processWord.
 */
export function keyValuePairs(s: string, escape: string, legacy: boolean): Array<[string, string | undefined]> {
  const words = rawWords(s, escape);
  if (words.length === 0) return [];
  if (legacy && !words[0]!.includes('=')) {
    const key = words[0]!;
    const rest = s.trimStart().slice(key.length).trim();
    return [[key, rest]];
  }
  return words.map((w): [string, string | undefined] => {
    const eq = w.indexOf('=');
    return eq < 0 ? [w, undefined] : [w.slice(0, eq), w.slice(eq + 1)];
  });
}

/** The exec (JSON) form: a JSON array of strings, else undefined (then it is the shell form). */
export function jsonForm(s: string): string[] | undefined {
  const t = s.trim();
  if (!t.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(t) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    // Not JSON: Docker then treats the text as the shell form.
  }
  return undefined;
}
