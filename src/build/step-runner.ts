/**
 * Turns one instruction into a plan: the text a learner sees, what its cache key covers
 * (the expanded instruction, the build args in scope, the sources' digest) and, for
 * RUN/COPY/ADD, how to execute it. Planning reads sources but changes nothing, so a cache
 * hit costs only the hashing of the step's own sources.
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { posix, relative } from 'node:path';
import { stagingName } from '../store/index.js';
import type { Digest } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import type { Store } from '../store/index.js';
import type { BuildOptions, StageRun } from './builder.js';
import { baseImage } from './base-image.js';
import { BuildContext, MAX_FILES_NAMED, type Source, type SourcesDigest } from './build-context.js';
import type { DigestCache } from './digest-cache.js';
import type { CopyItem } from './copy-files.js';
import type { Instruction } from './dockerfile-model.js';
import { buildDir, storeState, type ImageState } from './image-state.js';
import { download, isUrl, parseChecksum } from './remote-source.js';
import { applyMetadata, shellOf, type RunConfig } from './metadata.js';
import { jsonForm, processWord, processWords, type LexOptions, type Vars } from './shell-words.js';

/** A step, planned. */
export interface StepPlan {
  display: string;
  keyText: string;
  args: Record<string, string>;
  sources?: SourcesDigest;
  metadata: boolean;
  execute?: (parent: ImageState, output: (text: string) => void) => Promise<ImageState>;
}

/** A stage's result as COPY --from needs it. */
type StageLookup = (name: string) => Promise<{ state: ImageState } | undefined>;

/**
 * What runs a step (the sandbox, image mounts, commit: most of the program) is imported
 * only when a step runs or an image is mounted: a fully cached build plans every step and
 * runs none, and loading those modules was a third of its time.
 */
const runSteps = (): Promise<typeof import('./run-step.js')> => import('./run-step.js');
const copySteps = (): Promise<typeof import('./copy-step.js')> => import('./copy-step.js');

const COPY_FLAGS = new Set(['from', 'chown', 'chmod', 'link', 'checksum', 'keep-git-dir']);

/** Plans instructions for one build. */
export class StepRunner {
  constructor(
    private readonly store: Store,
    private readonly o: BuildOptions,
    private readonly lex: LexOptions,
    private readonly stageLookup: StageLookup,
    /** Content hashes of context files by stat (only for the build context, not images). */
    private readonly digests?: DigestCache,
  ) {}

  private downloadDir: string | undefined;

  /** This build's folder for ADD downloads (a staging name: a crashed build's is cleared). */
  private downloads(): string {
    this.downloadDir ??= `${buildDir(this.store)}/${stagingName()}`;
    return this.downloadDir;
  }

  /** At the end of a build: removes what planning downloaded, saves what hashing learned. */
  async cleanup(): Promise<void> {
    if (this.downloadDir) await rm(this.downloadDir, { recursive: true, force: true });
    if (this.o.context.root) await this.digests?.save(this.o.context.root);
  }

  /** Plans `ins` in stage `st` whose run config is `config` and variables `vars`. */
  async plan(st: StageRun, ins: Instruction, config: RunConfig, vars: Vars): Promise<StepPlan> {
    switch (ins.keyword) {
      case 'RUN':
        return this.planRun(st, ins, config);
      case 'COPY':
      case 'ADD':
        return this.planCopy(ins, config, vars);
      default: {
        const { createdBy } = applyMetadata(ins, config, vars, this.lex);
        return { display: createdBy, keyText: createdBy, args: {}, metadata: true };
      }
    }
  }

  private planRun(st: StageRun, ins: Instruction, config: RunConfig): StepPlan {
    for (const k of ins.flags.keys()) {
      if (k === 'mount' || k === 'security') throw new LayerfsError('INVALID_ARGUMENT', `RUN --${k} is not supported by layerfs build`);
      if (k !== 'network') throw new LayerfsError('INVALID_ARGUMENT', `RUN: unknown flag --${k}`);
    }
    const net = ins.flags.get('network');
    if (net !== undefined && !['default', 'none', 'host'].includes(net ?? '')) throw new LayerfsError('INVALID_ARGUMENT', `RUN --network=${net}: use none, host or default`);
    const network = net === 'host' ? 'host' : net === 'none' ? 'none' : this.o.network;
    const shell = shellOf(config);
    let argv: string[];
    if (ins.heredocs.length > 0) {
      if (ins.heredocs.length !== 1 || !/^<<-?["']?[A-Za-z_][A-Za-z0-9_]*["']?$/.test(ins.args)) {
        throw new LayerfsError('INVALID_ARGUMENT', 'RUN heredocs: only the form `RUN <<EOF` (the heredoc is the script) is supported');
      }
      argv = [...shell, ins.heredocs[0]!.body];
    } else {
      argv = jsonForm(ins.args) ?? [...shell, ins.args];
    }
    if (argv.length === 0) throw new LayerfsError('INVALID_ARGUMENT', 'RUN needs a command');
    const args = st.args.forKey();
    const env = new Map([...st.args.proxies(), ...st.args.defined()]);
    const envNames = new Set((config.Env ?? []).map((kv) => kv.split('=')[0]));
    const runEnv = [...env].filter(([k]) => !envNames.has(k)).map(([k, v]) => `${k}=${v}`);
    const argPrefix = Object.keys(args).length ? `|${Object.keys(args).length} ${Object.entries(args).map(([k, v]) => `${k}=${v}`).join(' ')} ` : '';
    const createdBy = `RUN ${argPrefix}${argv.join(' ')} # buildkit`;
    const flagText = net !== undefined ? `--network=${net} ` : '';
    const display = `RUN ${flagText}${ins.heredocs.length ? `<<${ins.heredocs[0]!.name} (${ins.heredocs[0]!.body.split('\n').length - 1} lines)` : ins.args}`;
    return {
      display,
      keyText: `RUN ${flagText}${JSON.stringify(argv)}`,
      args,
      metadata: false,
      execute: async (parent, output) =>
        (await runSteps()).runStep(this.store, { parent, argv, env: runEnv, workdir: config.WorkingDir || undefined, user: config.User || undefined, network, createdBy, output, signal: this.o.signal }),
    };
  }

  private async planCopy(ins: Instruction, config: RunConfig, vars: Vars): Promise<StepPlan> {
    const what = ins.keyword;
    for (const k of ins.flags.keys()) if (!COPY_FLAGS.has(k)) throw new LayerfsError('INVALID_ARGUMENT', `${what}: unknown flag --${k}`);
    if (what === 'COPY' && ins.flags.has('checksum')) throw new LayerfsError('INVALID_ARGUMENT', 'COPY: --checksum is only valid with ADD');
    const flag = (k: string): string | undefined => {
      const v = ins.flags.get(k);
      return v === undefined || v === null ? undefined : processWord(v, vars, this.lex);
    };
    const words = jsonForm(ins.args) ?? processWords(ins.args, vars, this.lex);
    if (words.length < 2) throw new LayerfsError('INVALID_ARGUMENT', `${what} requires at least two arguments, but got ${words.length}`);
    const destWord = words.at(-1)!;
    const srcWords = words.slice(0, -1);
    const dest = destWord.startsWith('/') ? destWord : posix.join(config.WorkingDir || '/', destWord) + (destWord.endsWith('/') || destWord === '.' ? '/' : '');
    const chmodText = flag('chmod');
    let chmod: number | undefined;
    if (chmodText !== undefined) {
      if (!/^[0-7]{3,4}$/.test(chmodText)) throw new LayerfsError('INVALID_ARGUMENT', `${what} --chmod=${chmodText}: expected an octal mode such as 755`);
      chmod = parseInt(chmodText, 8);
    }
    const chown = flag('chown');
    const from = flag('from');
    const urlWords = srcWords.filter(isUrl);
    if (urlWords.length && what === 'COPY') throw new LayerfsError('INVALID_ARGUMENT', `COPY ${urlWords[0]}: COPY takes no URLs (ADD does)`);
    if (urlWords.length && !this.o.allowNetwork) throw new LayerfsError('INVALID_ARGUMENT', `ADD ${urlWords[0]}: a build reaches the network only with --allow-network`, { hint: 'build with --allow-network, and pin the file with ADD --checksum=sha256:…' });
    const checksumText = flag('checksum');
    if (checksumText !== undefined && (urlWords.length !== 1 || srcWords.length !== 1)) throw new LayerfsError('INVALID_ARGUMENT', 'ADD --checksum needs exactly one source, a URL');
    const checksum = checksumText === undefined ? undefined : parseChecksum(checksumText);

    // Downloads (ADD URL) and heredoc sources (files named by their delimiter).
    const fileItems: CopyItem[] = [];
    const pathWords: string[] = [];
    for (const url of urlWords) {
      const f = await download(url, this.downloads(), checksum, this.o.signal);
      fileItems.push({ kind: 'download', url: f.url, name: f.name, abs: f.path, digest: f.digest, ...(f.mtime ? { mtime: f.mtime } : {}) });
    }
    for (const w of srcWords.filter((x) => !isUrl(x))) {
      const m = /^<<-?["']?([A-Za-z_][A-Za-z0-9_]*)["']?$/.exec(w);
      const h = m ? ins.heredocs.find((x) => x.name === m[1]) : undefined;
      if (h) fileItems.push({ kind: 'heredoc', name: h.name, content: h.expand ? processWord(h.body, vars, { ...this.lex, escape: '\0' }) : h.body });
      else pathWords.push(w);
    }

    let fromImage: Digest | undefined;
    if (from !== undefined) {
      const stage = await this.stageLookup(from);
      if (stage) {
        fromImage = (await storeState(this.store, stage.state)).stored;
      } else {
        fromImage = await baseImage(this.store, from, this.o.pull, `${what} --from=${from} (not a stage; as an image)`, this.o.progress);
      }
    }

    const resolveAndDigest = async (ctx: BuildContext): Promise<{ sources: Source[]; digest: SourcesDigest }> => {
      const sources = pathWords.length ? await ctx.resolve(pathWords, what) : [];
      const digest = await ctx.digestSources(sources, MAX_FILES_NAMED, ctx === this.o.context ? this.digests : undefined);
      for (const h of fileItems) {
        if (h.kind === 'heredoc') digest.files[`<<${h.name}`] = createHash('sha256').update(h.content).digest('hex').slice(0, 16);
        if (h.kind === 'download') digest.files[h.url] = h.digest.slice(7, 23);
      }
      digest.digest = `sha256:${createHash('sha256').update(JSON.stringify(digest.files)).update(digest.digest).digest('hex')}`;
      return { sources, digest };
    };
    let digest: SourcesDigest;
    if (fromImage) {
      let d: SourcesDigest | undefined;
      await (await copySteps()).withMountedImage(this.store, fromImage, true, async (root) => {
        d = (await resolveAndDigest(BuildContext.ofImageRoot(root))).digest;
      }, async () => undefined);
      digest = d!;
    } else {
      digest = (await resolveAndDigest(this.o.context)).digest;
    }
    const forceDir = pathWords.length + fileItems.length > 1 || pathWords.some((w) => /[*?[]/.test(w));
    const flagText = [from !== undefined ? `--from=${from}` : '', checksumText !== undefined ? `--checksum=${checksumText}` : '', chown !== undefined ? `--chown=${chown}` : '', chmodText !== undefined ? `--chmod=${chmodText}` : ''].filter(Boolean).join(' ');
    const display = `${what} ${flagText ? flagText + ' ' : ''}${srcWords.join(' ')} ${destWord}`;
    // --from sources count by content (the digest below), not by the image they came from:
    // a stage rebuilt into the same files leaves this step cached, as in BuildKit.
    const keyText = `${what} ${flagText ? flagText + ' ' : ''}${JSON.stringify(srcWords)} ${dest}`;
    const createdBy = `${display} # buildkit`;
    const ctx = this.o.context;
    const execute = async (parent: ImageState): Promise<ImageState> => {
      const { copyStep, withMountedImage } = await copySteps();
      const run = async (srcCtx: BuildContext, excluded?: (abs: string) => boolean): Promise<ImageState> => {
        const sources = pathWords.length ? await srcCtx.resolve(pathWords, what) : [];
        const items: CopyItem[] = [...sources.map((s): CopyItem => ({ kind: 'path', abs: s.abs, isDir: s.stat.isDirectory() })), ...fileItems];
        return copyStep(this.store, {
          parent,
          spec: { items, dest, forceDir, chmod, extract: what === 'ADD' && !fromImage, ...(excluded ? { excluded } : {}) },
          chown,
          createdBy,
        });
      };
      if (!fromImage) {
        const root = ctx.root;
        return run(ctx, root ? (abs) => ctx.ignored(relative(root, abs)) : undefined);
      }
      let out: ImageState | undefined;
      await withMountedImage(this.store, fromImage, true, async (root) => {
        out = await run(BuildContext.ofImageRoot(root));
      }, async () => undefined);
      return out!;
    };
    return { display, keyText, args: {}, sources: digest, metadata: false, execute };
  }
}
