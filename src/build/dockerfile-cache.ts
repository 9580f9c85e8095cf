/**
 * Parsed Dockerfiles kept by content in `<root>/build-cache/parsed/<key>.json`, so that a
 * build of an unchanged Dockerfile does not load the parser: dockerfile-ast and the
 * language-server packages it brings are ~35 CommonJS modules, measured at a sixth of a
 * fully cached build. The key hashes the Dockerfile's text and the parser's identity (the
 * code of dockerfile.ts as built, and dockerfile-ast's package.json, so its version): a
 * changed Dockerfile or a changed parser never finds an old entry. Only successful parses
 * are kept; a Dockerfile with an error is parsed, and reported, every time. An entry that
 * cannot be read or does not have the expected shape is ignored and written again: the
 * cache can cost a parse, never a wrong build. Entries are written atomically; beyond
 * MAX_ENTRIES the oldest go (an evicted entry costs one parse).
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../store/index.js';
import type { Dockerfile, Heredoc, Instruction, StageDef } from './dockerfile-model.js';

/** Bumped when the entry format changes. */
const FORMAT = 1;
/** Entries kept; one per distinct Dockerfile text built (a few hundred bytes to kilobytes each). */
export const MAX_ENTRIES = 200;

/** An instruction as JSON: the flags as [name, value] pairs. */
type StoredInstruction = Omit<Instruction, 'flags'> & { flags: Array<[string, string | null]> };
interface Entry {
  format: number;
  key: string;
  escape: string;
  globalArgs: StoredInstruction[];
  stages: Array<{ name: string | null; from: StoredInstruction; instructions: StoredInstruction[] }>;
}

let identity: Promise<string | undefined> | undefined;

/** What the parser is: its own module's code and dockerfile-ast's package.json; undefined when they cannot be read (then nothing is cached). */
function parserIdentity(): Promise<string | undefined> {
  identity ??= (async () => {
    try {
      // dockerfile.js beside this file (dockerfile.ts when run from the sources).
      const parser = fileURLToPath(import.meta.url).replace(/dockerfile-cache(\.[cm]?[jt]s)$/, 'dockerfile$1');
      const pkg = createRequire(import.meta.url).resolve('dockerfile-ast/package.json');
      const h = createHash('sha256').update(await readFile(parser)).update('\0').update(await readFile(pkg));
      return h.digest('hex');
    } catch {
      return undefined;
    }
  })();
  return identity;
}

const isString = (x: unknown): x is string => typeof x === 'string';
const isPosition = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) > 0;

function bad(): never {
  throw new Error('not a parsed Dockerfile entry');
}

function heredocFrom(x: unknown): Heredoc {
  const h = x as Partial<Heredoc> | null;
  if (!h || !isString(h.name) || !isString(h.body) || typeof h.expand !== 'boolean') bad();
  return { name: h.name, body: h.body, expand: h.expand };
}

function instructionFrom(x: unknown): Instruction {
  const i = x as Partial<StoredInstruction> | null;
  if (!i || !isString(i.keyword) || !isString(i.args) || !isPosition(i.line) || !isPosition(i.column) || !Array.isArray(i.flags) || !Array.isArray(i.heredocs)) bad();
  const flags = new Map<string, string | null>();
  for (const f of i.flags as unknown[]) {
    if (!Array.isArray(f) || f.length !== 2 || !isString(f[0]) || !(f[1] === null || isString(f[1]))) bad();
    flags.set(f[0], f[1] as string | null);
  }
  return { keyword: i.keyword, args: i.args, flags, heredocs: i.heredocs.map(heredocFrom), line: i.line, column: i.column };
}

/** The Dockerfile an entry holds, named `file`; throws when the entry is not one. */
function dockerfileFrom(x: unknown, key: string, file: string): Dockerfile {
  const e = x as Partial<Entry> | null;
  if (!e || e.format !== FORMAT || e.key !== key || !isString(e.escape) || !Array.isArray(e.globalArgs) || !Array.isArray(e.stages) || e.stages.length === 0) bad();
  const stages = e.stages.map((s, index): StageDef => {
    if (!s || !(s.name === null || isString(s.name)) || !Array.isArray(s.instructions)) bad();
    return { index, name: s.name ?? undefined, from: instructionFrom(s.from), instructions: s.instructions.map(instructionFrom) };
  });
  return { file, escape: e.escape, globalArgs: e.globalArgs.map(instructionFrom), stages };
}

function toStored(i: Instruction): StoredInstruction {
  return { ...i, flags: [...i.flags] };
}

/** Removes the oldest entries beyond MAX_ENTRIES. */
async function evict(dir: string): Promise<void> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.json'));
  if (names.length <= MAX_ENTRIES) return;
  const aged = await Promise.all(names.map(async (n) => ({ n, t: (await stat(`${dir}/${n}`).catch(() => undefined))?.mtimeMs ?? 0 })));
  aged.sort((a, b) => a.t - b.t);
  for (const { n } of aged.slice(0, names.length - MAX_ENTRIES)) await rm(`${dir}/${n}`, { force: true });
}

/** The parse of `text` (named `file` in errors), from `dir` when an earlier build kept it. */
export async function loadDockerfile(dir: string, text: string, file: string): Promise<Dockerfile> {
  const parser = await parserIdentity();
  const key = parser === undefined ? undefined : createHash('sha256').update(`${parser}\0${text}`).digest('hex');
  const path = `${dir}/${key}.json`;
  if (key !== undefined) {
    try {
      return dockerfileFrom(JSON.parse(await readFile(path, 'utf8')), key, file);
    } catch {
      // Missing, unreadable or not an entry: parsed below and written again.
    }
  }
  const { parseDockerfile } = await import('./dockerfile.js');
  const df = parseDockerfile(text, file);
  if (key !== undefined) {
    const entry: Entry = {
      format: FORMAT,
      key,
      escape: df.escape,
      globalArgs: df.globalArgs.map(toStored),
      stages: df.stages.map((s) => ({ name: s.name ?? null, from: toStored(s.from), instructions: s.instructions.map(toStored) })),
    };
    // A lost write costs the next build a parse, nothing else.
    await writeFileAtomic(path, JSON.stringify(entry))
      .then(() => evict(dir))
      .catch(() => undefined);
  }
  return df;
}
