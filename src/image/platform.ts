/**
 * Platforms (`os/arch[/variant]`) and choosing a manifest from an index. Rules from
 * image-formats.md: match os and architecture; a missing variant matches any variant
 * requested only when the request has none; for arm64, no variant and `v8` are the same.
 */
import { LayerfsError } from '../core/errors.js';
import type { Descriptor, Platform } from './oci-types.js';

const NODE_ARCH: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

/** The platform this process runs on, in OCI terms. */
export function hostPlatform(): Platform {
  const architecture = NODE_ARCH[process.arch] ?? process.arch;
  const p: Platform = { os: process.platform === 'win32' ? 'windows' : process.platform, architecture };
  if (architecture === 'arm') p.variant = 'v7';
  return p;
}

/** Parses `os/arch[/variant]`. */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((x) => x === '')) {
    throw new LayerfsError('INVALID_ARGUMENT', `invalid platform ${JSON.stringify(s)}: expected os/arch[/variant]`);
  }
  const p: Platform = { os: parts[0]!, architecture: parts[1]! };
  if (parts[2] !== undefined) p.variant = parts[2];
  return p;
}

/** `os/arch[/variant]`. */
export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

function normVariant(p: Platform): string {
  if (p.architecture === 'arm64' && (p.variant === undefined || p.variant === 'v8')) return '';
  return p.variant ?? '';
}

/** True when `have` satisfies the request `want`. */
export function platformMatches(want: Platform, have: Platform): boolean {
  if (want.os !== have.os || want.architecture !== have.architecture) return false;
  const wv = normVariant(want);
  return wv === '' || wv === normVariant(have);
}

/**
 * Picks the manifests of an index that fit `want`. Entries without a platform (e.g. an
 * attestation or an index nested inside) are kept so the caller can descend into them;
 * entries annotated as attestations (`vnd.docker.reference.type`) are dropped.
 */
export function selectForPlatform(entries: Descriptor[], want: Platform): Descriptor[] {
  return entries.filter((d) => {
    if (d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') return false;
    if (d.platform === undefined) return true;
    if (d.platform.os === 'unknown') return false;
    return platformMatches(want, d.platform);
  });
}
