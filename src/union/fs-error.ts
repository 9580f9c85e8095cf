/**
 * The union's one way to fail with an errno: a LayerfsError whose `code` is the closest
 * kind and whose `errno` is what the FUSE reply (or a test) sees.
 */
import { LayerfsError, isErrnoException, type ErrnoName, type ErrorCode } from '../core/errors.js';

const KIND: Partial<Record<ErrnoName, ErrorCode>> = {
  ENOENT: 'NOT_FOUND',
  EEXIST: 'ALREADY_EXISTS',
  EINVAL: 'INVALID_ARGUMENT',
  ENAMETOOLONG: 'INVALID_ARGUMENT',
  EBUSY: 'IN_USE',
  EIO: 'IO',
  ENOSPC: 'IO',
};

/** A LayerfsError carrying `errno`, e.g. `fsError('ENOTDIR', path)`. */
export function fsError(errno: ErrnoName, path: string, what = ''): LayerfsError {
  const code = KIND[errno] ?? 'FAILED_PRECONDITION';
  // These are ordinary replies (a lookup miss is one per `stat` of a missing file), not
  // bugs: skipping the stack trace makes them several times cheaper.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new LayerfsError(code, `${errno}: ${what ? what + ' ' : ''}${JSON.stringify(path)}`, { errno });
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** The errno name of a failure (a Node system error or a LayerfsError), or undefined. */
export function errnoOf(err: unknown): string | undefined {
  if (err instanceof LayerfsError) return err.errno;
  if (isErrnoException(err)) return err.code;
  return undefined;
}
