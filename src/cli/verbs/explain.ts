/**
 * `layerfs explain PATH` (a path inside a mounted container) or
 * `layerfs explain IMAGE|CONTAINER PATH`: which layer serves the path, what it shadows,
 * whether the writable layer holds a copy, and the whiteouts / opaque directories /
 * redirects on the way. Reads layer folders only; it never asks the mount.
 */
import type { Command } from 'commander';
import { resolve as resolvePath } from 'node:path';
import { layerShortId } from '../../core/digest.js';
import { LayerfsError } from '../../core/errors.js';
import { type ContainerRecord, Supervisor } from '../../supervisor/index.js';
import { explainPath, type Explanation, loadImageStack, openContainerView } from '../../inspect/index.js';
import type { Store } from '../../store/index.js';
import { humanSize, openStore, printJson } from './format.js';

const show = (p: string): string => Buffer.from(p, 'latin1').toString('utf8');
const toBytes = (p: string): string => Buffer.from(p, 'utf8').toString('latin1');

/** The mounted container whose mount point holds `abs`, deepest mount first. */
function containerOfPath(all: ContainerRecord[], abs: string): { c: ContainerRecord; inside: string } | undefined {
  const hits = all.filter((c) => c.state === 'mounted' && c.mountpoint && (abs === c.mountpoint || abs.startsWith(c.mountpoint + '/')));
  hits.sort((a, b) => b.mountpoint!.length - a.mountpoint!.length);
  const c = hits[0];
  return c ? { c, inside: abs.slice(c.mountpoint!.length) || '/' } : undefined;
}

function printExplanation(e: Explanation, subject: string): void {
  const w = (s: string): boolean => process.stdout.write(s + '\n');
  w(`${show(e.path)} in ${subject}: ${e.exists ? 'exists' : 'does not exist'}`);
  if (e.servedBy === 'writable layer') w('  served by: the writable layer');
  else if (e.servedBy) w(`  served by: layer ${e.servedBy.position} ${layerShortId(e.servedBy.diffId)}  ${e.servedBy.createdBy}`);
  if (e.lowerPath !== null && e.lowerPath !== e.path) w(`  image layers are looked up at: ${show(e.lowerPath)} (a renamed directory above it)`);
  if (e.upper) {
    const u = e.upper;
    const what = u.kind === 'whiteout' ? 'a whiteout (0/0 character device): deleted in the container' : u.copiedUp ? `copied up from the image (${u.kind}, ${humanSize(u.size)})` : `created in the container (${u.kind}, ${humanSize(u.size)})`;
    w(`  writable layer: ${what}`);
    w(`    file: ${show(u.file)}`);
    w(`    mtime ${u.mtime}, changed ${u.ctime}${u.opaque ? ', opaque directory' : ''}${u.redirect ? `, renamed from ${show(u.redirect)}` : ''}`);
  } else if (e.servedBy !== null) {
    w('  writable layer: no copy (reads go to the image layer; a write would copy it up)');
  }
  if (e.copies.length) {
    w('  image layers holding this path (top first):');
    for (const c of e.copies) {
      w(`    layer ${c.layer.position} ${layerShortId(c.layer.diffId)}  ${c.role.toUpperCase()}  ${c.kind}${c.kind === 'file' ? ` ${humanSize(c.size)}` : ''}  ${c.layer.createdBy}`);
      w(`      ${show(c.file)}${c.why ? `  (${c.why})` : ''}`);
    }
  } else {
    w('  no image layer holds this path');
  }
  for (const m of e.markers) w(`  on the way: ${m.detail} [${m.where}]`);
}

async function explainIn(store: Store, sup: Supervisor, subject: string, path: string): Promise<{ e: Explanation; label: string }> {
  const inside = toBytes(path.startsWith('/') ? path : '/' + path).replace(/\/+$/, '') || '/';
  const container = await sup.find(subject);
  if (container) {
    const cv = await openContainerView(store, container.image, sup.handle(container).paths.upper);
    return { e: await explainPath(cv.stack, inside, cv), label: `container ${container.name} (image ${container.imageRef})` };
  }
  const id = await store.resolveImage(subject);
  return { e: await explainPath(await loadImageStack(store, id), inside), label: `image ${subject}` };
}

/** Registers `explain` on the program. */
export function register(program: Command): void {
  program
    .command('explain')
    .description('Explain where a path comes from: the layer serving it, copies it shadows, copy-up, whiteouts and opaque dirs on the way')
    .argument('<target>', 'a path inside a mounted container, or an IMAGE / CONTAINER name followed by PATH')
    .argument('[path]', 'path inside the image or container (with IMAGE or CONTAINER)')
    .option('--json', 'print as JSON')
    .action(async (target: string, path: string | undefined, flags: { json?: boolean }, cmd: Command) => {
      const store = await openStore(cmd);
      const sup = new Supervisor(store);
      let result: { e: Explanation; label: string };
      if (path !== undefined) {
        result = await explainIn(store, sup, target, path);
      } else {
        const abs = resolvePath(target);
        const hit = containerOfPath(await sup.list(), abs);
        if (!hit) throw new LayerfsError('NOT_FOUND', `${abs} is not inside a mounted container`, { hint: 'give an image or container and a path: layerfs explain IMAGE PATH' });
        result = await explainIn(store, sup, hit.c.id, hit.inside);
      }
      if (flags.json) {
        const layer = (l: { position: number; chainId: string; createdBy: string }) => ({ position: l.position, chainId: l.chainId, createdBy: l.createdBy });
        const { e } = result;
        printJson({
          path: show(e.path),
          subject: result.label,
          exists: e.exists,
          lowerPath: e.lowerPath === null ? null : show(e.lowerPath),
          servedBy: e.servedBy === 'writable layer' ? 'writable layer' : e.servedBy ? layer(e.servedBy) : null,
          upper: e.upper ? { ...e.upper, file: show(e.upper.file) } : null,
          copies: e.copies.map((c) => ({ ...c, layer: layer(c.layer), file: show(c.file) })),
          markers: e.markers.map((m) => ({ ...m, path: show(m.path) })),
        });
        return;
      }
      printExplanation(result.e, result.label);
    });
}
