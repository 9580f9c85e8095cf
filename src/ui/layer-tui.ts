/**
 * The interactive view of `layerfs layers` on a terminal: the layer list on top, and the
 * selected layer's changes as a directory tree (A added, C modified, D removed), like
 * dive's "changed files" view. Keys: ←/→ (or h/l, Tab) layer, ↑/↓ (or k/j) move,
 * Space/Enter fold or unfold a directory, q / Ctrl-C quit. Plain ANSI, no dependency.
 */
import type { ImageAnalysis, LayerReport } from '../inspect/index.js';

interface Row {
  depth: number;
  name: string;
  path: string;
  kind?: 'A' | 'C' | 'D';
  dir: boolean;
}

interface DirNode {
  children: Map<string, DirNode>;
  kind?: 'A' | 'C' | 'D';
}

const CSI = '\x1b[';
const color = { A: `${CSI}32m`, C: `${CSI}33m`, D: `${CSI}31m` } as const;
const show = (p: string): string => Buffer.from(p, 'latin1').toString('utf8');

/** The changed paths of a layer as a tree. */
function treeOf(r: LayerReport): DirNode {
  const root: DirNode = { children: new Map() };
  const add = (path: string, kind: 'A' | 'C' | 'D'): void => {
    let n = root;
    for (const part of path.split('/').slice(1)) {
      let c = n.children.get(part);
      if (!c) n.children.set(part, (c = { children: new Map() }));
      n = c;
    }
    n.kind = kind;
  };
  for (const p of r.added) add(p, 'A');
  for (const p of r.modified) add(p, 'C');
  for (const p of r.removed) add(p, 'D');
  return root;
}

function rowsOf(node: DirNode, folded: Set<string>, prefix = '', depth = 0, out: Row[] = []): Row[] {
  for (const name of [...node.children.keys()].sort()) {
    const c = node.children.get(name)!;
    const path = `${prefix}/${name}`;
    const dir = c.children.size > 0;
    const row: Row = { depth, name, path, dir };
    if (c.kind) row.kind = c.kind;
    out.push(row);
    if (dir && !folded.has(path)) rowsOf(c, folded, path, depth + 1, out);
  }
  return out;
}

/** Runs the interactive view until the user quits. */
export async function runLayerTui(a: ImageAnalysis, input: NodeJS.ReadStream, output: NodeJS.WriteStream): Promise<void> {
  let layer = a.layers.length - 1;
  let cursor = 0;
  const folded = new Map<number, Set<string>>();
  const foldsOf = (l: number): Set<string> => folded.get(l) ?? folded.set(l, new Set()).get(l)!;
  const trees = a.layers.map(treeOf);
  const render = (): void => {
    const rows = rowsOf(trees[layer]!, foldsOf(layer));
    cursor = Math.max(0, Math.min(cursor, rows.length - 1));
    const height = (output.rows || 24) - a.layers.length - 5;
    const width = output.columns || 80;
    const lines: string[] = [`${CSI}1mlayerfs layers${CSI}0m  wasted ${a.wastedBytes} B · efficiency ${(a.efficiency * 100).toFixed(1)} %   ←/→ layer  ↑/↓ move  space fold  q quit`];
    for (const r of [...a.layers].reverse()) {
      const sel = r.layer.position === layer;
      const text = `${sel ? '▶' : ' '} layer ${r.layer.position}  +${r.added.length} ~${r.modified.length} -${r.removed.length}  ${r.layer.createdBy}`;
      lines.push(sel ? `${CSI}7m${text.slice(0, width)}${CSI}0m` : text.slice(0, width));
    }
    lines.push('', `${CSI}1mchanges in layer ${layer}${CSI}0m (${rows.length} entries)`);
    const top = Math.max(0, Math.min(cursor - Math.floor(height / 2), rows.length - height));
    for (const [i, row] of rows.slice(top, top + Math.max(1, height)).entries()) {
      const mark = row.kind ? `${color[row.kind]}${row.kind}${CSI}0m` : ' ';
      const fold = row.dir ? (foldsOf(layer).has(row.path) ? '▸ ' : '▾ ') : '  ';
      const text = `${mark} ${'  '.repeat(row.depth)}${fold}${show(row.name)}${row.dir ? '/' : ''}`;
      lines.push(top + i === cursor ? `${CSI}7m${text}${CSI}0m` : text);
    }
    output.write(`${CSI}H${CSI}2J${lines.join('\r\n')}\r\n`);
  };
  return new Promise<void>((resolve) => {
    const done = (): void => {
      input.setRawMode?.(false);
      input.pause();
      input.off('data', onKey);
      output.write(`${CSI}?25h\r\n`);
      resolve();
    };
    const onKey = (buf: Buffer): void => {
      const k = buf.toString('latin1');
      const rows = rowsOf(trees[layer]!, foldsOf(layer));
      if (k === 'q' || k === '\x03') return done();
      if (k === `${CSI}C` || k === 'l' || k === '\t') layer = Math.min(a.layers.length - 1, layer + 1);
      else if (k === `${CSI}D` || k === 'h') layer = Math.max(0, layer - 1);
      else if (k === `${CSI}A` || k === 'k') cursor--;
      else if (k === `${CSI}B` || k === 'j') cursor++;
      else if (k === ' ' || k === '\r') {
        const row = rows[cursor];
        if (row?.dir) {
          const f = foldsOf(layer);
          if (f.has(row.path)) f.delete(row.path);
          else f.add(row.path);
        }
      }
      render();
    };
    input.setRawMode?.(true);
    input.resume();
    input.on('data', onKey);
    output.write(`${CSI}?25l`);
    render();
  });
}
