/**
 * The images a build starts from (FROM) or copies from (COPY --from=IMAGE): found in the
 * store, or pulled from their registry through `layerfs pull`'s puller when missing —
 * `--pull always` pulls every time (a newer image changes the parent, so the cache says
 * so), `--pull never` only looks in the store. Pull progress becomes the step's lines.
 */
import { shortId, type Digest } from '../core/digest.js';
import { LayerfsError } from '../core/errors.js';
import { parseReference } from '../image/index.js';
import type { ClientOptions } from '../registry/index.js';
import type { Store } from '../store/index.js';

/** When to pull a named image. */
export type PullPolicy = 'missing' | 'always' | 'never';

/** How a build reaches registries. */
export interface PullSettings {
  policy: PullPolicy;
  client: ClientOptions;
}

/** Parses `--pull[=POLICY]` (a bare `--pull` is `always`, as in docker build). */
export function parsePullPolicy(v: string | boolean | undefined): PullPolicy {
  if (v === undefined || v === false) return 'missing';
  if (v === true) return 'always';
  if (v === 'missing' || v === 'always' || v === 'never') return v;
  if (v === 'true') return 'always';
  if (v === 'false') return 'missing';
  throw new LayerfsError('INVALID_ARGUMENT', `invalid --pull ${JSON.stringify(v)}: use missing, always or never`);
}

/** Whether `ref` names an image by id (never pulled) rather than by reference. */
const isId = (ref: string): boolean => /^(sha256:)?[0-9a-f]{12,64}$/.test(ref);

/** The image `ref` names, pulled when the policy says so; `what` starts error messages. */
export async function baseImage(store: Store, ref: string, pull: PullSettings, what: string, progress: (line: string) => void): Promise<Digest> {
  let found: Digest | undefined;
  let lookupError: unknown;
  if (pull.policy !== 'always' || isId(ref)) {
    try {
      found = await store.resolveImage(ref);
    } catch (err) {
      if (!(err instanceof LayerfsError) || err.code !== 'NOT_FOUND') throw err;
      lookupError = err;
    }
  }
  if (found) return found;
  if (pull.policy === 'never' || isId(ref)) {
    throw new LayerfsError('NOT_FOUND', `${what}: no such image in the store`, { cause: lookupError, hint: `pull or load it first (\`layerfs pull ${ref}\`), or build without --pull never` });
  }
  try {
    parseReference(ref);
  } catch (err) {
    throw new LayerfsError('INVALID_ARGUMENT', `${what}: ${(err as Error).message}`, { cause: err });
  }
  progress(`pulling ${ref}`);
  try {
    // The registry client is imported only to pull: a build from stored images never needs it.
    const { pullImage } = await import('../registry/index.js');
    const r = await pullImage(store, ref, {
      ...pull.client,
      onEvent: (e) => {
        if (e.type === 'layer' && (e.status === 'Pull complete' || e.status === 'Already exists')) progress(`${e.id}: ${e.status}`);
      },
    });
    progress(`pulled ${r.reference} (${shortId(r.id)}, ${r.digest})`);
    return r.id;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new LayerfsError(err instanceof LayerfsError ? err.code : 'REGISTRY', `${what}: not in the store, and the pull failed: ${msg}`, { cause: err, ...(err instanceof LayerfsError && err.hint ? { hint: err.hint } : {}) });
  }
}
