/**
 * What a parsed Dockerfile is (dockerfile.ts makes one, dockerfile-cache.ts keeps it),
 * and the error that points into one. Apart from the parser so that the builder can use
 * a cached parse without loading dockerfile-ast.
 */
import { LayerfsError } from '../core/errors.js';

/** A heredoc body (`<<EOF … EOF`) attached to RUN, COPY or ADD. */
export interface Heredoc {
  name: string;
  body: string;
  /** False when the delimiter was quoted (`<<'EOF'`): no variable expansion. */
  expand: boolean;
}

/** One instruction as written. */
export interface Instruction {
  keyword: string;
  /** The arguments after the flags, continuations joined; for a heredoc instruction, its first line. */
  args: string;
  flags: Map<string, string | null>;
  heredocs: Heredoc[];
  /** 1-based position of the keyword. */
  line: number;
  column: number;
}

/** One `FROM … [AS name]` and what follows it. */
export interface StageDef {
  index: number;
  name: string | undefined;
  from: Instruction;
  instructions: Instruction[];
}

/** A parsed Dockerfile. */
export interface Dockerfile {
  file: string;
  escape: string;
  /** ARGs before the first FROM (usable in FROM lines). */
  globalArgs: Instruction[];
  stages: StageDef[];
}

/** An error at a place in the Dockerfile. */
export function syntaxError(file: string, at: { line: number; column: number }, message: string): LayerfsError {
  return new LayerfsError('INVALID_ARGUMENT', `${file}:${at.line}:${at.column}: ${message}`);
}
