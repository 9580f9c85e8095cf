/**
 * A Dockerfile as the builder needs it: global ARGs, then stages, each a FROM and its
 * instructions, every instruction with its flags, its argument text (line continuations
 * joined, comment lines dropped, the `# escape=` directive honoured) and its heredoc
 * bodies. The lexical work is done by dockerfile-ast (the parser of the Dockerfile
 * language server); this module checks what it found against the instruction set and
 * reports errors with file, line and column.
 */
import { DockerfileParser, type Instruction as AstInstruction } from 'dockerfile-ast';
import { syntaxError, type Dockerfile, type Heredoc, type Instruction } from './dockerfile-model.js';

export type { Dockerfile, Heredoc, Instruction, StageDef } from './dockerfile-model.js';

/** Instructions the builder knows (ONBUILD is refused with a clear message). */
export const KEYWORDS = new Set([
  'FROM', 'RUN', 'COPY', 'ADD', 'ENV', 'ARG', 'WORKDIR', 'USER', 'CMD', 'ENTRYPOINT',
  'LABEL', 'EXPOSE', 'VOLUME', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL', 'MAINTAINER',
]);

const HEREDOC = /<<(-?)(["']?)([A-Za-z_][A-Za-z0-9_]*)\2/g;

/** Splits the text of a heredoc instruction into its first line and bodies. */
function heredocsOf(text: string, file: string, at: { line: number; column: number }): { first: string; heredocs: Heredoc[] } {
  const lines = text.split('\n');
  const first = lines.shift() ?? '';
  const heredocs: Heredoc[] = [];
  for (const m of first.matchAll(HEREDOC)) {
    const [, dash, quote, name] = m;
    const body: string[] = [];
    for (;;) {
      const l = lines.shift();
      if (l === undefined) throw syntaxError(file, at, `heredoc <<${name} has no closing ${name} line`);
      const t = dash ? l.replace(/^\t+/, '') : l;
      if (t === name) break;
      body.push(t);
    }
    heredocs.push({ name: name!, body: body.length ? body.join('\n') + '\n' : '', expand: !quote });
  }
  return { first, heredocs };
}

/** The flags of an instruction (`--from=x`, `--chown=…`); a flag without `=` has a null value. */
function flagsOf(i: AstInstruction): Map<string, string | null> {
  const out = new Map<string, string | null>();
  const withFlags = i as AstInstruction & { getFlags?: () => Array<{ getName(): string; getValue(): string | null }> };
  for (const f of withFlags.getFlags?.() ?? []) out.set(f.getName().toLowerCase(), f.getValue());
  return out;
}

/** Removes leading `--flag[=value]` words from a line. */
function stripFlags(s: string): string {
  return s.replace(/^\s*(--[A-Za-z-]+(=("[^"]*"|\S*))?\s+)*/, '');
}

/** Parses Dockerfile `text`; `file` names it in errors. */
export function parseDockerfile(text: string, file: string): Dockerfile {
  const doc = DockerfileParser.parse(text);
  const lines = text.split('\n');
  const escape = doc.getEscapeCharacter();
  const out: Dockerfile = { file, escape, globalArgs: [], stages: [] };
  for (const ai of doc.getInstructions()) {
    const range = ai.getRange();
    const at = { line: range.start.line + 1, column: range.start.character + 1 };
    const keyword = ai.getKeyword().toUpperCase();
    if (keyword === 'ONBUILD') throw syntaxError(file, at, 'ONBUILD is not supported by layerfs build');
    if (!KEYWORDS.has(keyword)) throw syntaxError(file, at, `unknown instruction: ${ai.getInstruction()}`);
    let args = ai.getArgumentsContent() ?? '';
    let heredocs: Heredoc[] = [];
    if (['RUN', 'COPY', 'ADD'].includes(keyword)) {
      // The raw text (not the AST's joined arguments): heredoc bodies keep their lines.
      const raw = lines.slice(range.start.line, range.end.line + 1).join('\n');
      const afterKeyword = raw.slice(range.start.character).replace(/^\s*\S+/, '');
      const firstLine = afterKeyword.split('\n')[0] ?? '';
      if (new RegExp(HEREDOC.source).test(stripFlags(firstLine))) {
        const h = heredocsOf(afterKeyword, file, at);
        args = stripFlags(h.first).trim();
        heredocs = h.heredocs;
      }
    }
    const ins: Instruction = { keyword, args: args.trim(), flags: flagsOf(ai), heredocs, line: at.line, column: at.column };
    if (keyword === 'FROM') {
      const words = ins.args.split(/\s+/).filter(Boolean);
      if (words.length !== 1 && !(words.length === 3 && words[1]!.toUpperCase() === 'AS')) {
        throw syntaxError(file, at, 'FROM needs an image, optionally followed by AS <name>');
      }
      const name = words[2]?.toLowerCase();
      if (name !== undefined && !/^[a-z][a-z0-9-_.]*$/.test(name)) throw syntaxError(file, at, `invalid stage name ${JSON.stringify(words[2])}`);
      if (name !== undefined && out.stages.some((s) => s.name === name)) throw syntaxError(file, at, `duplicate stage name ${JSON.stringify(name)}`);
      out.stages.push({ index: out.stages.length, name, from: ins, instructions: [] });
      continue;
    }
    const stage = out.stages.at(-1);
    if (!stage) {
      if (keyword !== 'ARG') throw syntaxError(file, at, `${keyword} before the first FROM (only ARG may come before it)`);
      out.globalArgs.push(ins);
      continue;
    }
    stage.instructions.push(ins);
  }
  if (out.stages.length === 0) throw syntaxError(file, { line: 1, column: 1 }, 'no FROM instruction: a Dockerfile must start a stage with FROM');
  return out;
}
