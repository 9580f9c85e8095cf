/**
 * What the oracle must know of the descriptors a sequence holds, to tell a known
 * difference (known-differences.ts) from a new one: which were opened read-only, and
 * which lost the name they were opened by (unlinked, or replaced by a rename). Names are
 * followed on the kernel's side, where every op succeeded as the kernel says.
 */
import type { Op, OpResult } from './oracle.js';

export class HeldFds {
  private readonly readOnly = new Set<string>();
  /** fd → the name it was opened by, as it is now ('' once that name is gone). */
  private readonly names = new Map<string, string>();

  /** `resolve`: the real path of an op path on the kernel's mount (symlinks followed). */
  constructor(private readonly resolve: (path: string) => Promise<string>) {}

  isReadOnly(fd: string): boolean {
    return this.readOnly.has(fd);
  }

  /** The name `fd` was opened by is gone (a FUSE node without a path). */
  isOrphan(fd: string): boolean {
    return this.names.get(fd) === '';
  }

  /** Follows `op`, which the kernel answered with `kernel`. */
  async after(op: Op, kernel: OpResult): Promise<void> {
    const o = op.op === 'as' ? op.do : op;
    if (!kernel.ok) return;
    const rename = (from: string, to: string): string[] => [...this.names].filter(([, n]) => n === from || n.startsWith(from + '/')).map(([fd, n]) => {
      this.names.set(fd, to + n.slice(from.length));
      return fd;
    });
    switch (o.op) {
      case 'open':
        this.names.set(o.fd, await this.resolve(o.path));
        if (!o.write) this.readOnly.add(o.fd);
        return;
      case 'close':
        this.names.delete(o.fd);
        this.readOnly.delete(o.fd);
        return;
      case 'unlink': {
        const gone = await this.resolveName(o.path);
        for (const [fd, n] of this.names) if (n === gone) this.names.set(fd, '');
        return;
      }
      case 'rename': {
        if (o.from === o.to) return;
        const [from, to] = [await this.resolveName(o.from), await this.resolveName(o.to)];
        if (o.flags === 'exchange') {
          const moved = rename(from, '\0');
          rename(to, from);
          for (const fd of moved) this.names.set(fd, to + this.names.get(fd)!.slice(1));
          return;
        }
        for (const [fd, n] of this.names) if (n === to) this.names.set(fd, '');
        rename(from, to);
        return;
      }
      default:
        return;
    }
  }

  /**
   * The real path of the name `path` ends in, as unlink and rename take it: its directory
   * resolved (`/sd/x` is `/d/x` when `/sd` links to `/d`), the last name not followed.
   */
  private async resolveName(path: string): Promise<string> {
    const slash = path.lastIndexOf('/');
    const dir = await this.resolve(path.slice(0, slash) || '/');
    return `${dir === '/' ? '' : dir}/${path.slice(slash + 1)}`;
  }
}

/**
 * A view that may lag (known difference hard-link-sibling-attr-lag): every field shows
 * either what the kernel shows now or what this subject showed before the op.
 */
export function isStaleMix(u: unknown, k: unknown, before: unknown): boolean {
  const [ur, kr, br] = [u as OpResult | undefined, k as OpResult | undefined, before as OpResult | undefined];
  if (!ur?.ok || !kr?.ok || !br?.ok) return JSON.stringify(u) === JSON.stringify(before);
  const [uv, kv, bv] = [ur.value as Record<string, unknown>, kr.value as Record<string, unknown>, br.value as Record<string, unknown>];
  return Object.keys(uv).every((f) => JSON.stringify(uv[f]) === JSON.stringify(kv[f]) || JSON.stringify(uv[f]) === JSON.stringify(bv[f]));
}
