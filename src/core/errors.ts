/**
 * The one error type of layerfs. Every failure that crosses a module boundary is a
 * LayerfsError with a `code` from a closed set, so callers switch on kinds, not on
 * message text. `fuse/` maps codes (or the carried errno) to FUSE replies and `cli/`
 * maps them to exit codes; nothing else converts.
 */
export type ErrorCode =
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'INVALID_ARGUMENT'
  | 'INVALID_IMAGE'
  | 'DIGEST_MISMATCH'
  | 'UNSAFE_PATH'
  | 'LIMIT_EXCEEDED'
  | 'FAILED_PRECONDITION'
  | 'IN_USE'
  | 'NATIVE_BINDING'
  | 'MOUNT_FAILED'
  | 'RUNTIME'
  | 'REGISTRY'
  | 'UNAUTHORIZED'
  /** Store metadata or a layer cache that cannot be read as written; `layerfs check` diagnoses it. */
  | 'DAMAGED'
  | 'IO';

/** errno names layerfs replies with; values are Linux's. */
export const Errno = {
  EPERM: 1, ENOENT: 2, EIO: 5, EBADF: 9, EAGAIN: 11, ENOMEM: 12, EACCES: 13, EBUSY: 16,
  EEXIST: 17, EXDEV: 18, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, EMFILE: 24, EFBIG: 27,
  ENOSPC: 28, EROFS: 30, EMLINK: 31, ERANGE: 34, ENAMETOOLONG: 36, ENOSYS: 38,
  ENOTEMPTY: 39, ELOOP: 40, ENODATA: 61, EOVERFLOW: 75, EOPNOTSUPP: 95, ENOTCONN: 107,
  ETIMEDOUT: 110,
} as const;
export type ErrnoName = keyof typeof Errno;

export interface LayerfsErrorOptions {
  cause?: unknown;
  /** What the user can do about it; printed under the message by the CLI. */
  hint?: string;
  /** The errno a FUSE reply should carry when this error reaches the mount boundary. */
  errno?: ErrnoName;
}

export class LayerfsError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly errno: ErrnoName | undefined;

  constructor(code: ErrorCode, message: string, options: LayerfsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LayerfsError';
    this.code = code;
    this.hint = options.hint;
    this.errno = options.errno;
  }
}

/** True for Node system errors (those with a string `code` such as 'ENOENT'). */
export function isErrnoException(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string';
}

/**
 * For a read where a system error means "nothing there" to its caller (an xattr that is
 * absent, unsupported, or on a path gone since): null for an error the kernel answered;
 * anything else is thrown, never taken as an answer. A missing native binding once made
 * every such read "absent" — opaque directories merged, whiteouts ignored — and the index
 * built from them was cached for the next mount.
 */
export function nullOnSystemError(err: unknown): null {
  if (err instanceof LayerfsError || !isErrnoException(err)) throw err;
  return null;
}

/** True when `err` is a Node system error with the given code. */
export function hasErrnoCode(err: unknown, code: ErrnoName): boolean {
  return isErrnoException(err) && err.code === code;
}
