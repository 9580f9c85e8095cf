/**
 * Image references (`[domain/]path[:tag][@digest]`) with Docker's defaults: no domain means
 * docker.io, a one-component docker.io path gets `library/`, no tag and no digest means
 * `:latest`. The "familiar" form drops `docker.io/` and `library/` again, as `docker images`
 * prints it and as `repositories.json` stores it.
 */
import { LayerfsError } from '../core/errors.js';
import { isDigestString } from '../core/digest.js';

/** A parsed, normalized reference. */
export interface Reference {
  /** Registry host, e.g. 'docker.io', 'localhost:5000'. */
  domain: string;
  /** Repository path, e.g. 'library/debian'. */
  path: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DOMAIN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$/;

function invalid(ref: string, why: string): LayerfsError {
  return new LayerfsError('INVALID_ARGUMENT', `invalid reference ${JSON.stringify(ref)}: ${why}`);
}

/** Parses and normalizes a reference; `defaultTag` applies when neither tag nor digest is given. */
export function parseReference(ref: string, defaultTag: string | null = 'latest'): Reference {
  if (ref.length === 0 || ref.length > 255 * 2) throw invalid(ref, 'empty or too long');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigestString(digest)) throw invalid(ref, 'digest must be sha256:<64 hex>');
  }
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) throw invalid(ref, `bad tag ${JSON.stringify(tag)}`);
  }
  let domain = 'docker.io';
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase())) {
    if (!DOMAIN.test(first)) throw invalid(ref, `bad registry host ${JSON.stringify(first)}`);
    domain = first === 'index.docker.io' ? 'docker.io' : first;
    rest = rest.slice(slash + 1);
  }
  if (rest === '') throw invalid(ref, 'missing repository name');
  for (const c of rest.split('/')) {
    if (!COMPONENT.test(c)) throw invalid(ref, `bad name component ${JSON.stringify(c)} (lowercase letters, digits, separators)`);
  }
  if (domain === 'docker.io' && !rest.includes('/')) rest = `library/${rest}`;
  const out: Reference = { domain, path: rest };
  if (tag !== undefined) out.tag = tag;
  else if (digest === undefined && defaultTag !== null) out.tag = defaultTag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

/** The repository in familiar form: 'debian', 'user/app', 'localhost:5000/app'. */
export function familiarName(r: Reference): string {
  if (r.domain === 'docker.io') return r.path.startsWith('library/') ? r.path.slice('library/'.length) : r.path;
  return `${r.domain}/${r.path}`;
}

/** The fully qualified repository: 'docker.io/library/debian'. */
export function fullName(r: Reference): string {
  return `${r.domain}/${r.path}`;
}

/** `familiar[:tag][@digest]`. */
export function familiarString(r: Reference): string {
  return familiarName(r) + (r.tag !== undefined ? `:${r.tag}` : '') + (r.digest !== undefined ? `@${r.digest}` : '');
}

/** `domain/path[:tag][@digest]`. */
export function fullString(r: Reference): string {
  return fullName(r) + (r.tag !== undefined ? `:${r.tag}` : '') + (r.digest !== undefined ? `@${r.digest}` : '');
}

/** True when `s` parses as a reference (used to tell `name:tag` annotations from bare tags). */
export function looksLikeReference(s: string): boolean {
  try {
    parseReference(s);
    return true;
  } catch {
    return false;
  }
}
