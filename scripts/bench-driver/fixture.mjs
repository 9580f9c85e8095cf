/**
 * The bench's tree, built once and cached under .cache/bench/: a Debian bookworm minbase
 * rootfs from debootstrap split into three overlayfs-format layers with real shadowing,
 * whiteouts and opaque directories, a synthetic tree that brings the merged view past
 * 100,000 entries, a 1 GiB incompressible file, and the path lists the stat and copy-up
 * workloads read. Rebuilt when FIXTURE_VERSION changes or a stamp is missing.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, readdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sh, run } from './run.mjs';

/** Bump when the layout of the layers or lists changes; a stale cache is rebuilt. */
export const FIXTURE_VERSION = 4;
const TREE_DIRS = 240;
const TREE_FILES = 400;
const LIST_SIZE = 100_000;
const COPYUP_SIZE = 1000;

/** Build (or reuse) the fixture; returns its paths. `log` prints progress lines. */
export async function ensureFixture(cacheDir, log) {
  mkdirSync(cacheDir, { recursive: true });
  const rootfs = join(cacheDir, 'rootfs');
  await ensureRootfs(cacheDir, rootfs, log);
  const dir = join(cacheDir, `layers-v${FIXTURE_VERSION}`);
  const fixture = describe(dir);
  if (existsSync(join(dir, 'meta.json'))) {
    fixture.meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'));
    return fixture;
  }
  for (const old of readdirSync(cacheDir)) if (old.startsWith('layers-v')) rmSync(join(cacheDir, old), { recursive: true, force: true });
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  log(`building the layers in ${dir} (once)…`);
  const t = describe(tmp);
  await buildLayers(rootfs, t);
  log('writing the 1 GiB incompressible file (once)…');
  await run(['dd', 'if=/dev/urandom', `of=${join(t.layers[0], 'bench', 'big.bin')}`, 'bs=1M', 'count=1024', 'iflag=fullblock', 'status=none']);
  log('listing the merged view through kernel overlayfs…');
  const meta = await buildLists(t);
  writeFileSync(join(tmp, 'meta.json'), JSON.stringify(meta, null, 2));
  renameSync(tmp, dir);
  fixture.meta = meta;
  return fixture;
}

function describe(dir) {
  return {
    dir,
    /** Bottom first: l0 (base), l1, l2 (top). */
    layers: [join(dir, 'l0'), join(dir, 'l1'), join(dir, 'l2')],
    lists: join(dir, 'lists'),
    meta: undefined,
  };
}

async function ensureRootfs(cacheDir, rootfs, log) {
  if (existsSync(join(rootfs, '.bench-debootstrap-ok'))) return;
  const tmp = `${rootfs}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  log('debootstrap --variant=minbase bookworm (once, a few minutes)…');
  const logFile = join(cacheDir, 'rootfs.debootstrap.log');
  try {
    await sh(`debootstrap --variant=minbase bookworm '${tmp}' http://deb.debian.org/debian > '${logFile}' 2>&1`, { timeoutMs: 20 * 60_000 });
  } catch (err) {
    const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n') : '';
    throw new Error(`debootstrap failed (${err.message}); last lines of ${logFile}:\n${tail}`);
  }
  renameSync(tmp, rootfs);
  writeFileSync(join(rootfs, '.bench-debootstrap-ok'), `${new Date().toISOString()}\n`);
}

const pad = (n, w) => String(n).padStart(w, '0');

/**
 * Small file contents: every 10th file holds 0–4 KiB so tar reads some data, the rest are
 * empty; the rootfs brings the realistic data, the synthetic tree the entry count (full
 * files made a cold tar of the kernel mount alone take 18 s of random reads here).
 */
function content(d, f) {
  if (f % 10 !== 5) return '';
  const line = `layerfs bench tree d${pad(d, 3)}/f${pad(f, 4)}\n`;
  return line.repeat(((d * 131 + f * 37) % 4096) / line.length | 0);
}

async function buildLayers(rootfs, t) {
  const [l0, l1, l2] = t.layers;
  for (const d of [...t.layers, t.lists]) mkdirSync(d, { recursive: true });
  // layer0: the rootfs minus the docs and the dpkg database (layer1 brings those).
  await run(['cp', '-a', `${rootfs}/.`, `${l0}/`]);
  rmSync(join(l0, '.bench-debootstrap-ok'));
  mkdirSync(join(l1, 'usr', 'share'), { recursive: true });
  mkdirSync(join(l1, 'var', 'lib'), { recursive: true });
  renameSync(join(l0, 'usr', 'share', 'doc'), join(l1, 'usr', 'share', 'doc'));
  renameSync(join(l0, 'var', 'lib', 'dpkg'), join(l1, 'var', 'lib', 'dpkg'));
  // layer1 shadows some /etc files with modified copies.
  mkdirSync(join(l1, 'etc'));
  for (const f of ['passwd', 'group', 'hostname', 'issue', 'bash.bashrc', 'motd']) {
    writeFileSync(join(l1, 'etc', f), readFileSync(join(l0, 'etc', f), 'utf8') + '# layer1 edit\n');
  }
  // The synthetic tree: 96,000 small (mostly empty) files in layer0, every 20th of d000–d039 shadowed
  // in layer1, plus files that only layer1 has.
  for (let d = 0; d < TREE_DIRS; d++) {
    const dir = join(l0, 'bench', 'tree', `d${pad(d, 3)}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < TREE_FILES; f++) writeFileSync(join(dir, `f${pad(f, 4)}`), content(d, f));
  }
  for (let d = 0; d < 40; d++) {
    const dir = join(l1, 'bench', 'tree', `d${pad(d, 3)}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < TREE_FILES; f += 20) writeFileSync(join(dir, `f${pad(f, 4)}`), `layer1 override ${d}/${f}\n`);
    for (let f = 0; f < 10; f++) writeFileSync(join(dir, `new-${f}`), `layer1 new ${d}/${f}\n`);
  }
  // layer2: whiteouts (0/0 char devices) for lower files and directories, opaque
  // directories, and overrides.
  const whiteouts = ['etc/motd', 'etc/issue.net', 'bench/tree/d239'];
  for (const doc of readdirSync(join(l1, 'usr', 'share', 'doc')).sort().filter((_, i) => i % 9 === 0)) whiteouts.push(`usr/share/doc/${doc}`);
  for (let d = 40; d < 60; d++) for (let f = 3; f < TREE_FILES; f += 25) whiteouts.push(`bench/tree/d${pad(d, 3)}/f${pad(f, 4)}`);
  for (const w of whiteouts) {
    mkdirSync(join(l2, w, '..'), { recursive: true });
    await run(['mknod', join(l2, w), 'c', '0', '0']);
  }
  for (const [opaque, files] of [['etc/apt', ['sources.list']], ['bench/tree/d010', ['a', 'b', 'c', 'd', 'e']]]) {
    mkdirSync(join(l2, opaque), { recursive: true });
    await run(['setfattr', '-n', 'trusted.overlay.opaque', '-v', 'y', join(l2, opaque)]);
    for (const f of files) writeFileSync(join(l2, opaque, f), `layer2 opaque ${opaque}/${f}\n`);
  }
  writeFileSync(join(l2, 'etc', 'os-release'), 'PRETTY_NAME="layerfs bench"\n');
  writeFileSync(join(l2, 'etc', 'hostname'), 'layer2\n');
  mkdirSync(join(l2, 'bench', 'tree', 'd000'), { recursive: true });
  writeFileSync(join(l2, 'bench', 'tree', 'd000', 'f0000'), 'layer2 override\n');
  writeFileSync(join(t.lists, 'whiteouts.txt'), whiteouts.join('\n') + '\n');
}

/** Seeded shuffle, so every run stats the same paths in the same order. */
function shuffle(items, seed) {
  let s = seed >>> 0;
  for (let i = items.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

async function buildLists(t) {
  const [l0, l1, l2] = t.layers;
  const tmp = mkdtempSync(join(tmpdir(), 'layerfs-bench-list-'));
  const mnt = join(tmp, 'mnt');
  mkdirSync(mnt);
  let entries;
  let dirs;
  try {
    await run(['mount', '-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${l2}:${l1}:${l0}`, mnt]);
    try {
      entries = (await sh('find . -mindepth 1 | sed "s|^\\./||"', { cwd: mnt })).stdout.split('\n').filter(Boolean);
      dirs = (await sh('find . -mindepth 1 -type d | sed "s|^\\./||"', { cwd: mnt })).stdout.split('\n').filter(Boolean);
    } finally {
      await run(['umount', mnt]).catch(() => run(['umount', '-l', mnt]));
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const hit = shuffle([...entries], 1).slice(0, LIST_SIZE);
  const whiteouts = readFileSync(join(t.lists, 'whiteouts.txt'), 'utf8').split('\n').filter(Boolean);
  const miss = [...whiteouts];
  for (let i = 0; miss.length < LIST_SIZE; i++) miss.push(`${dirs[(i * 7919) % dirs.length]}/missing-${i}`);
  const copyup = [];
  for (let d = 100; copyup.length < COPYUP_SIZE; d++) for (let f = 0; f < TREE_FILES && copyup.length < COPYUP_SIZE; f++) copyup.push(`bench/tree/d${pad(d, 3)}/f${pad(f, 4)}`);
  const write = (name, lines) => writeFileSync(join(t.lists, name), lines.join('\n') + '\n');
  write('stat-hit.txt', hit);
  write('stat-hit-quick.txt', hit.slice(0, 10_000));
  write('stat-miss.txt', miss);
  write('stat-miss-quick.txt', miss.slice(0, 10_000));
  write('copyup.txt', copyup);
  write('copyup-quick.txt', copyup.slice(0, 100));
  write('copyup-big.txt', ['bench/big.bin']);
  return { version: FIXTURE_VERSION, mergedEntries: entries.length, mergedDirs: dirs.length, whiteouts: whiteouts.length, statHit: hit.length, statMiss: miss.length, copyup: copyup.length, builtAt: new Date().toISOString() };
}
