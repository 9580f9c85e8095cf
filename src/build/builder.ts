/**
 * `layerfs build`: a Dockerfile becomes an image, one step per instruction, on layerfs
 * mounts. The stages the target needs are built (dependencies first, FROM or COPY --from,
 * cycles refused); the others are skipped. Each step is looked up in the build cache
 * (build-cache.ts) by its key; a hit reuses the cached image state, a miss says why and
 * runs the step — metadata instructions change the config and add an empty-layer history
 * entry, RUN/COPY/ADD make a layer (run-step.ts, copy-step.ts) — and records it.
 */
import { LayerfsError } from '../core/errors.js';
import { shortId, type Digest } from '../core/digest.js';
import { markBuilt } from '../store/index.js';
import type { Store } from '../store/index.js';
import { formatPlatform, hostPlatform, parsePlatform, platformMatches } from '../image/index.js';
import { baseImage, type PullSettings } from './base-image.js';
import { ArgScope, PROXY_ARGS, platformArgs } from './build-args.js';
import { BuildCache, cacheKey, type CacheInputs } from './build-cache.js';
import { recordBuild, type StepLayer, type StepReport } from './build-log.js';
import type { BuildContext } from './build-context.js';
import { loadDockerfile } from './dockerfile-cache.js';
import { syntaxError, type Dockerfile, type Instruction, type StageDef } from './dockerfile-model.js';
import { DigestCache } from './digest-cache.js';
import { HISTORY_COMMENT, buildDir, clearStaleStaging, configOf, idOf, layersPresent, scratchState, stateOfImage, storeState, topChain, withConfig, type ImageState } from './image-state.js';
import { applyMetadata, envVars, type RunConfig } from './metadata.js';
import { StepRunner } from './step-runner.js';
import { processWord, type LexOptions } from './shell-words.js';

/** What to build. */
export interface BuildOptions {
  dockerfile: { text: string; name: string };
  context: BuildContext;
  tags: string[];
  buildArgs: Map<string, string>;
  target?: string;
  noCache: boolean;
  labels: Map<string, string>;
  network: 'none' | 'host';
  /** When and how to pull FROM and COPY --from images the store lacks. */
  pull: PullSettings;
  /** Remote ADD sources are fetched only when set (--allow-network). */
  allowNetwork: boolean;
  /** Receives every progress line (plain form). */
  progress: (line: string) => void;
  signal: AbortSignal;
}

export type { StepReport } from './build-log.js';

/** The result of a build. */
export interface BuildResult {
  id: Digest;
  steps: StepReport[];
}

/** A stage being built. */
export interface StageRun {
  def: StageDef;
  label: string;
  state: ImageState;
  key: string;
  parentName: string;
  /** The last step of this stage (or its FROM stage) that ran rather than hit the cache. */
  rebuilt?: string;
  args: ArgScope;
}

/** A stage's finished result. */
interface StageResult {
  state: ImageState;
  key: string;
  rebuilt?: string;
}

const now = (): string => new Date().toISOString();

/** Builds a Dockerfile; see the module comment. */
export class Builder {
  private df!: Dockerfile;
  private lex!: LexOptions;
  private readonly results = new Map<number, StageResult>();
  private readonly building = new Set<number>();
  private readonly consumed = new Set<string>();
  private readonly globals = new Map<string, string | undefined>();
  readonly steps: StepReport[] = [];
  private stepNo = 0;
  private cache!: BuildCache;
  private runner!: StepRunner;

  constructor(
    private readonly store: Store,
    private readonly o: BuildOptions,
  ) {}

  /** Runs the build; the target (or last) stage is stored and tagged. */
  async build(): Promise<BuildResult> {
    // Parsed first: a Dockerfile with an error fails before anything is touched.
    this.df = await loadDockerfile(`${buildDir(this.store)}/parsed`, this.o.dockerfile.text, this.o.dockerfile.name);
    this.lex = { escape: this.df.escape };
    await clearStaleStaging(this.store);
    this.cache = await BuildCache.open(this.store);
    const root = this.o.context.root;
    const digests = root ? await DigestCache.open(`${buildDir(this.store)}/file-digests`, root) : undefined;
    this.runner = new StepRunner(this.store, this.o, this.lex, (name) => this.stageRef(name), digests);
    const globalScope = new ArgScope(this.o.buildArgs, new Map(), this.consumed);
    for (const ins of this.df.globalArgs) globalScope.declare(ins, new Map(), this.lex);
    for (const [k, v] of globalScope.values) this.globals.set(k, v);
    const target = this.targetStage();
    const started = new Date();
    const record = { started: started.toISOString(), dockerfile: this.o.dockerfile.name, context: this.o.context.root ?? null, tags: this.o.tags, steps: this.steps };
    const seconds = (): number => (Date.now() - started.getTime()) / 1000;
    try {
      const result = await this.buildTarget(target);
      await recordBuild(this.store, { ...record, seconds: seconds(), id: result.id });
      return result;
    } catch (err) {
      await recordBuild(this.store, { ...record, seconds: seconds(), error: err instanceof Error ? err.message : String(err) }).catch(() => undefined);
      throw err;
    } finally {
      await this.runner.cleanup();
    }
  }

  /** The layer on top of `state` when the step made it (its last history entry is not empty). */
  private async producedLayer(state: ImageState): Promise<StepLayer | undefined> {
    const c = configOf(state);
    const diffIds = c.rootfs.diff_ids;
    if (diffIds.length === 0 || c.history?.at(-1)?.empty_layer) return undefined;
    const rec = await this.store.layers.get(topChain(state)!).catch(() => undefined);
    return { diffId: diffIds.at(-1)!, size: rec?.size ?? 0, position: diffIds.length - 1 };
  }

  private async buildTarget(target: StageDef): Promise<BuildResult> {
    const result = await this.stage(target.index);
    let final = result.state;
    if (this.o.labels.size > 0) {
      const c = configOf(final);
      c.config = { ...(c.config ?? {}), Labels: { ...((c.config?.Labels as Record<string, string>) ?? {}), ...Object.fromEntries(this.o.labels) } };
      final = withConfig(final, c);
    }
    const unused = [...this.o.buildArgs.keys()].filter((k) => !this.consumed.has(k) && !PROXY_ARGS.has(k));
    if (unused.length) this.o.progress(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed`);
    for (const t of this.o.tags) final = await storeState(this.store, final, t);
    if (this.o.tags.length === 0) final = await storeState(this.store, final);
    // The result is an image of its own (`<none>` in `images` when untagged), not cache.
    await markBuilt(this.store.images, final.stored!, 'result');
    return { id: idOf(final), steps: this.steps };
  }

  private targetStage(): StageDef {
    if (this.o.target === undefined) return this.df.stages.at(-1)!;
    const t = this.df.stages.find((s) => s.name === this.o.target!.toLowerCase());
    if (!t) throw new LayerfsError('INVALID_ARGUMENT', `target stage ${JSON.stringify(this.o.target)} could not be found in ${this.df.file}`, { hint: `stages: ${this.df.stages.map((s) => s.name ?? String(s.index)).join(', ')}` });
    return t;
  }

  /** A stage by name or index, for FROM and COPY --from; undefined when `name` is not a stage. */
  private findStage(name: string): StageDef | undefined {
    const lower = name.toLowerCase();
    return this.df.stages.find((s) => s.name === lower) ?? (/^\d+$/.test(name) ? this.df.stages[Number(name)] : undefined);
  }

  /** The result of stage `name` (built on demand) or undefined when it is not a stage. */
  private async stageRef(name: string): Promise<StageResult | undefined> {
    const s = this.findStage(name);
    return s ? this.stage(s.index) : undefined;
  }

  /** Builds stage `index` once (its dependencies first). */
  private async stage(index: number): Promise<StageResult> {
    const done = this.results.get(index);
    if (done) return done;
    const def = this.df.stages[index]!;
    if (this.building.has(index)) throw syntaxError(this.df.file, def.from, `circular dependency between stages involving ${def.name ?? `stage ${index}`}`);
    this.building.add(index);
    // Stages this one reads (FROM, COPY --from) are built first, so its steps run in order.
    for (const dep of this.dependencies(def)) await this.stage(dep.index);
    const st = await this.from(def);
    for (const ins of def.instructions) {
      if (this.o.signal.aborted) throw new LayerfsError('RUNTIME', 'build interrupted');
      await this.step(st, ins);
    }
    this.building.delete(index);
    const r: StageResult = { state: st.state, key: st.key, ...(st.rebuilt ? { rebuilt: st.rebuilt } : {}) };
    this.results.set(index, r);
    return r;
  }

  /** Stages `def` names in FROM or COPY --from (names expanded with the global args). */
  private dependencies(def: StageDef): StageDef[] {
    const globals = new Map<string, string>();
    for (const [k, v] of this.globals) if (v !== undefined) globals.set(k, v);
    const names = [def.from.args.split(/\s+/)[0]!];
    for (const ins of def.instructions) {
      const f = ins.flags.get('from');
      if ((ins.keyword === 'COPY' || ins.keyword === 'ADD') && f) names.push(f);
    }
    const out: StageDef[] = [];
    for (const raw of names) {
      const name = processWord(raw, globals, this.lex);
      const dep = this.findStage(name);
      if (!dep || dep.index === def.index && raw === names[0]) continue;
      if (dep.index === def.index) throw syntaxError(this.df.file, def.from, `stage ${def.name ?? def.index} copies from itself`);
      out.push(dep);
    }
    return out;
  }

  private async from(def: StageDef): Promise<StageRun> {
    const globals = new Map<string, string>();
    for (const [k, v] of this.globals) if (v !== undefined) globals.set(k, v);
    const base = processWord(def.from.args.split(/\s+/)[0]!, globals, this.lex);
    const label = def.name ?? `stage-${def.index}`;
    for (const [k, v] of def.from.flags) {
      if (k !== 'platform') throw syntaxError(this.df.file, def.from, `FROM: unknown flag --${k}`);
      // Platform args ($BUILDPLATFORM…) are the host's: only the host platform can be built.
      const want = parsePlatform(processWord(v ?? '', new Map([...platformArgs(), ...globals]), this.lex));
      if (!platformMatches(want, hostPlatform())) throw syntaxError(this.df.file, def.from, `FROM --platform=${formatPlatform(want)}: layerfs builds for the host platform only (${formatPlatform(hostPlatform())})`);
    }
    const args = new ArgScope(this.o.buildArgs, this.globals, this.consumed);
    const n = ++this.stepNo;
    this.o.progress(`#${n} [${label}] FROM ${base}`);
    const dep = this.findStage(base);
    if (dep && dep.index !== def.index && /^[a-z]/i.test(base)) {
      if (dep.index > def.index) throw syntaxError(this.df.file, def.from, `FROM ${base}: a stage can only start from an earlier stage`);
      const r = await this.stage(dep.index);
      return { def, label, state: r.state, key: r.key, parentName: `stage ${base}`, ...(r.rebuilt ? { rebuilt: `stage ${base}` } : {}), args };
    }
    if (base.toLowerCase() === 'scratch') return { def, label, state: scratchState(), key: 'scratch', parentName: 'scratch', args };
    const id = await baseImage(this.store, base, this.o.pull, `${this.df.file}:${def.from.line}: FROM ${base}`, (line) => this.o.progress(`#${n} ${line}`));
    return { def, label, state: await stateOfImage(this.store, id), key: `image:${id}`, parentName: `${base} (${shortId(id)})`, args };
  }

  /** One instruction: cache lookup, explanation, execution, record. */
  private async step(st: StageRun, ins: Instruction): Promise<void> {
    const n = ++this.stepNo;
    const started = Date.now();
    const config = (configOf(st.state).config ?? {}) as RunConfig;
    const vars = new Map([...st.args.defined(), ...envVars(config)]);
    const at = `${this.df.file}:${ins.line}`;
    if (ins.keyword === 'ARG') {
      const text = wrap(at, () => st.args.declare(ins, envVars(config), this.lex));
      this.o.progress(`#${n} [${st.label}] ${text}`);
      this.steps.push({ n, stage: st.label, text, cached: false, seconds: 0 });
      return;
    }
    // What the step is and what it depends on, before running anything.
    const plan = await wrapAsync(at, () => this.runner.plan(st, ins, config, vars));
    this.o.progress(`#${n} [${st.label}] ${plan.display}`);
    const slot = `${this.o.context.root ?? '-'}:${this.df.file}:${st.label}:${st.def.instructions.indexOf(ins)}`;
    const inputs: CacheInputs = { slot, parent: st.key, parentName: st.parentName, text: plan.keyText, args: plan.args, ...(plan.sources ? { sources: plan.sources } : {}) };
    const key = cacheKey(inputs);
    const hit = this.o.noCache ? undefined : this.cache.get(key);
    let reason: string | undefined;
    if (hit) {
      const state: ImageState = { configBytes: hit.result.configBytes, layers: hit.result.layers };
      if (await layersPresent(this.store, state)) {
        await this.cache.touch(key);
        this.o.progress(`#${n} CACHED`);
        st.state = state;
        st.key = key;
        st.parentName = `step #${n} [${key.slice(7, 19)}]`;
        const layer = plan.metadata ? undefined : await this.producedLayer(state);
        this.steps.push({ n, stage: st.label, text: plan.display, cached: true, seconds: (Date.now() - started) / 1000, ...(layer ? { layer } : {}) });
        return;
      }
      await this.cache.drop(key);
      reason = 'the cached result is gone from the store (pruned)';
    }
    reason ??= this.o.noCache ? 'cache disabled (--no-cache)' : this.cache.explainMiss(inputs, st.rebuilt);
    this.o.progress(`#${n} MISS: ${reason}`);
    let next: ImageState;
    if (plan.metadata) {
      const c = configOf(st.state);
      const applied = applyMetadata(ins, config, vars, this.lex);
      c.config = applied.config;
      const created = now();
      c.created = created;
      c.history = [...(c.history ?? []), { created, created_by: applied.createdBy, comment: HISTORY_COMMENT, empty_layer: true }];
      next = withConfig(st.state, c);
    } else {
      if (!st.state.stored) st.state = await storeState(this.store, st.state);
      try {
        next = await plan.execute!(st.state, (text) => this.output(n, text));
        await markBuilt(this.store.images, next.stored!, 'intermediate');
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        throw new LayerfsError(err instanceof LayerfsError ? err.code : 'RUNTIME', `${at}: step #${n} ${plan.display}: ${msg}`, { cause: err });
      }
    }
    await this.cache.put({ key, inputs, result: { configBytes: next.configBytes, layers: next.layers }, created: now() });
    st.state = next;
    st.key = key;
    st.parentName = `step #${n} [${key.slice(7, 19)}]`;
    st.rebuilt = `step #${n}`;
    const seconds = (Date.now() - started) / 1000;
    this.o.progress(`#${n} DONE ${seconds.toFixed(1)}s`);
    const layer = plan.metadata ? undefined : await this.producedLayer(next);
    this.steps.push({ n, stage: st.label, text: plan.display, cached: false, reason, seconds, ...(layer ? { layer } : {}) });
  }

  private output(n: number, text: string): void {
    for (const line of text.split('\n')) if (line !== '') this.o.progress(`#${n} ${line}`);
  }
}

/** Prefixes an error with the Dockerfile position. */
function wrap<T>(at: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof LayerfsError && !err.message.startsWith(at)) throw new LayerfsError(err.code, `${at}: ${err.message}`, { cause: err, ...(err.hint ? { hint: err.hint } : {}) });
    throw err;
  }
}

async function wrapAsync<T>(at: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof LayerfsError && !err.message.startsWith(at)) throw new LayerfsError(err.code, `${at}: ${err.message}`, { cause: err, ...(err.hint ? { hint: err.hint } : {}) });
    throw err;
  }
}
