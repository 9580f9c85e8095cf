/**
 * POSIX ACL inheritance for an object built where its parent's default ACL cannot reach
 * it: a new object that replaces a whiteout, or an opaque directory, is made in the work
 * directory and renamed into place (upper-writer.ts), as the kernel's overlayfs does, so
 * the backing filesystem never applies the parent's default ACL. The kernel's overlayfs
 * then computes the ACLs itself (posix_acl_create on the parent, then sets them on the
 * new upper object: ovl_create_over_whiteout); this is that computation, on the xattr
 * bytes (include/uapi/linux/posix_acl_xattr.h: a u32 version 2, then 8-byte entries
 * u16 tag, u16 perm, u32 id, little-endian).
 */

export const ACL_ACCESS_XATTR = 'system.posix_acl_access';
export const ACL_DEFAULT_XATTR = 'system.posix_acl_default';

const VERSION = 2;
const HEADER = 4;
const ENTRY = 8;
const TAG = { USER_OBJ: 0x01, USER: 0x02, GROUP_OBJ: 0x04, GROUP: 0x08, MASK: 0x10, OTHER: 0x20 } as const;

/** What a new object gets under a parent with a default ACL. */
export interface InheritedAcl {
  /** The new object's mode (type bits kept, permission bits as the ACL allows). */
  mode: number;
  /** Its access ACL; undefined when the mode alone says it all (no named entries, no mask). */
  access?: Buffer;
  /** Its default ACL (directories only: the parent's, unchanged). */
  default?: Buffer;
}

/**
 * posix_acl_create(): the access ACL of a new object of `mode` (type and permission bits
 * asked for, no umask: a default ACL replaces it) under the default ACL `parentDefault`.
 * Returns undefined when the bytes are not an ACL the kernel would have stored.
 */
export function inheritAcl(parentDefault: Buffer, mode: number, isDir: boolean): InheritedAcl | undefined {
  if (parentDefault.length < HEADER || (parentDefault.length - HEADER) % ENTRY !== 0) return undefined;
  if (parentDefault.readUInt32LE(0) !== VERSION) return undefined;
  const acl = Buffer.from(parentDefault);
  const count = (acl.length - HEADER) / ENTRY;
  if (count === 0) return undefined;
  const permAt = (i: number): number => HEADER + i * ENTRY + 2;
  let m = mode & 0o777;
  let extended = false;
  let groupObj = -1;
  let mask = -1;
  for (let i = 0; i < count; i++) {
    const tag = acl.readUInt16LE(HEADER + i * ENTRY);
    const perm = acl.readUInt16LE(permAt(i));
    switch (tag) {
      case TAG.USER_OBJ: {
        const p = perm & ((m >> 6) | ~0o7);
        acl.writeUInt16LE(p & 0xffff, permAt(i));
        m &= (p << 6) | ~0o700;
        break;
      }
      case TAG.USER:
      case TAG.GROUP:
        extended = true;
        break;
      case TAG.GROUP_OBJ:
        groupObj = i;
        break;
      case TAG.OTHER: {
        const p = perm & (m | ~0o7);
        acl.writeUInt16LE(p & 0xffff, permAt(i));
        m &= p | ~0o7;
        break;
      }
      case TAG.MASK:
        mask = i;
        extended = true;
        break;
      default:
        return undefined;
    }
  }
  const g = mask >= 0 ? mask : groupObj;
  if (g < 0) return undefined;
  const p = acl.readUInt16LE(permAt(g)) & ((m >> 3) | ~0o7);
  acl.writeUInt16LE(p & 0xffff, permAt(g));
  m &= (p << 3) | ~0o70;
  return {
    mode: (mode & ~0o777) | (m & 0o777),
    ...(extended ? { access: acl } : {}),
    ...(isDir ? { default: parentDefault } : {}),
  };
}
