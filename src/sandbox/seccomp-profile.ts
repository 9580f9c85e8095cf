/**
 * The seccomp filter of every container: allow by default, refuse (EPERM) the system
 * calls Docker's default profile keeps from a container without CAP_SYS_ADMIN & co. —
 * the kernel-wide ones (modules, kexec, reboot, clock, swap, accounting), namespace and
 * mount changes, the kernel keyring, bpf/perf, userfaultfd, handle-based opens (the
 * "shocker" escape) — and new user namespaces through clone(), which need no capability.
 * clone3 answers ENOSYS, as in Docker, so libc falls back to the filtered clone().
 *
 * A deny list, not Docker's full allow list: shorter to audit, and the capability set
 * already refuses most privileged calls; this closes the ones capabilities do not cover.
 */

const EPERM = 1;
const ENOSYS = 38;
const CLONE_NEWUSER = 0x10000000;

/** Refused with EPERM. */
export const BLOCKED_SYSCALLS = [
  'acct', 'add_key', 'bpf', 'clock_adjtime', 'clock_settime', 'create_module', 'delete_module',
  'finit_module', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'get_kernel_syms', 'init_module',
  'ioperm', 'iopl', 'kcmp', 'kexec_file_load', 'kexec_load', 'keyctl', 'lookup_dcookie', 'mount',
  'mount_setattr', 'move_mount', 'move_pages', 'name_to_handle_at', 'nfsservctl', 'open_by_handle_at',
  'open_tree', 'perf_event_open', 'pivot_root', 'query_module', 'quotactl', 'reboot', 'request_key',
  'setns', 'settimeofday', 'stime', 'swapoff', 'swapon', 'sysfs', '_sysctl', 'umount', 'umount2',
  'unshare', 'uselib', 'userfaultfd', 'ustat', 'vm86', 'vm86old',
];

/** `linux.seccomp` of the runtime spec. */
export interface SeccompProfile {
  defaultAction: string;
  architectures: string[];
  syscalls: Array<{ names: string[]; action: string; errnoRet?: number; args?: Array<{ index: number; value: number; valueTwo: number; op: string }> }>;
}

/** The profile, for x86 and arm hosts (names a kernel lacks are skipped by the runtime). */
export function defaultSeccompProfile(): SeccompProfile {
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
    syscalls: [
      { names: BLOCKED_SYSCALLS, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
      // clone(flags, …): flags is argument 0 on x86 and arm.
      { names: ['clone'], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, args: [{ index: 0, value: CLONE_NEWUSER, valueTwo: CLONE_NEWUSER, op: 'SCMP_CMP_MASKED_EQ' }] },
    ],
  };
}
