/**
 * The errno boundary: every failure that reaches a FUSE reply becomes a negative errno
 * here and nowhere else. Unknown failures become EIO — the mount never dies of them.
 */
import { constants } from 'node:os';
import { Errno, LayerfsError, isErrnoException } from '../core/errors.js';

const byName = constants.errno as Record<string, number>;

/** A negative errno for any thrown value. */
export function toNegativeErrno(err: unknown): number {
  if (err instanceof LayerfsError) {
    if (err.errno) return -Errno[err.errno];
    switch (err.code) {
      case 'NOT_FOUND':
        return -Errno.ENOENT;
      case 'ALREADY_EXISTS':
        return -Errno.EEXIST;
      case 'INVALID_ARGUMENT':
        return -Errno.EINVAL;
      case 'UNSAFE_PATH':
        return -Errno.EPERM;
      default:
        return -Errno.EIO;
    }
  }
  if (isErrnoException(err)) {
    const code = err.code ?? '';
    const n = byName[code];
    if (typeof n === 'number' && n > 0) return -n;
    if (typeof err.errno === 'number' && err.errno < 0) return err.errno;
  }
  return -Errno.EIO;
}

/**
 * Whether a failure that answered `errno` is worth a line in the mount log: an EIO that is
 * not a damaged layer (DAMAGED was logged once, with its layer, by the filesystem).
 */
export function isUnexpectedFailure(err: unknown, errno: number): boolean {
  return errno === -Errno.EIO && !(err instanceof LayerfsError && err.code === 'DAMAGED');
}
