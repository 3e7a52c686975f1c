"""A seccomp filter for sandboxed kernels, as the classic BPF program bubblewrap loads (`--seccomp`).

Root's bubblewrap cannot forbid user namespaces itself (its `--disable-userns` needs one of its
own), so without a filter a cell could make a user namespace and be root, with every capability,
inside it: not a way out by itself, but the door to the kernel code only namespace root reaches.
The filter closes that and the other usual doors, and allows everything else:

- new namespaces: `unshare`, `setns`, `clone` with a namespace flag, `clone3` (its flags are in
  memory a filter cannot read; it answers ENOSYS, so the C library falls back to `clone`);
- mounts, `chroot`, `pivot_root`, the new mount API;
- looking into or driving other processes: `ptrace`, `process_vm_*`, `kcmp`, `pidfd_getfd`;
- kernel attack surface seldom needed by user code: `bpf`, `perf_event_open`, `userfaultfd`,
  `io_uring_*` (which could also open sockets past any socket rule), the keyring, modules, kexec,
  `open_by_handle_at`, swap, reboot, `syslog`, `acct`, `quotactl`, `vhangup`, `personality`;
- any system call of another ABI (32-bit x86, x32), which would name these by other numbers.

Denied calls fail with EPERM, so code that probes for them carries on. A pure function of the
machine's architecture: the program is built once and unit-tested without loading it.
"""

from __future__ import annotations

import errno
import platform
import struct

# classic BPF opcodes
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JSET_K = 0x45
_RET_K = 0x06
# seccomp return values and the layout of struct seccomp_data
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_NR, _ARCH, _ARG0 = 0, 4, 16

_X32_BIT = 0x40000000
_NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET

_DENIED = [
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "name_to_handle_at",
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "quotactl",
    "vhangup",
    "personality",
]

# per architecture: its audit id, and the numbers of clone, clone3 and the denied calls
_X86_64 = {
    "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155,
    "chroot": 161, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431,
    "fsmount": 432, "fspick": 433, "mount_setattr": 442, "ptrace": 101,
    "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "pidfd_getfd": 438,
    "bpf": 321, "perf_event_open": 298, "keyctl": 250, "add_key": 248, "request_key": 249,
    "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "open_by_handle_at": 304, "name_to_handle_at": 303, "acct": 163,
    "swapon": 167, "swapoff": 168, "reboot": 169, "syslog": 103, "quotactl": 179,
    "vhangup": 153, "personality": 135, "clone": 56, "clone3": 435,
}  # fmt: skip
_AARCH64 = {
    "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "mount_setattr": 442, "ptrace": 117, "process_vm_readv": 270,
    "process_vm_writev": 271, "kcmp": 272, "pidfd_getfd": 438, "bpf": 280,
    "perf_event_open": 241, "keyctl": 219, "add_key": 217, "request_key": 218,
    "userfaultfd": 282, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
    "delete_module": 106, "open_by_handle_at": 265, "name_to_handle_at": 264, "acct": 89,
    "swapon": 224, "swapoff": 225, "reboot": 142, "syslog": 116, "quotactl": 60,
    "vhangup": 58, "personality": 92, "clone": 220, "clone3": 435,
}  # fmt: skip
ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (0xC000003E, _X86_64),
    "aarch64": (0xC00000B7, _AARCH64),
}


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def filter_program(machine: str | None = None) -> bytes | None:
    """The filter for `machine` (default: this one) as bytes of `struct sock_filter`, or None
    for an architecture this module does not know."""
    arch = ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, numbers = arch
    eperm = _ERRNO | errno.EPERM
    ops = [
        _op(_LD_W_ABS, _ARCH),
        _op(_JEQ_K, audit_arch, jt=1),  # this ABI: go on; any other: refused
        _op(_RET_K, eperm),
        _op(_LD_W_ABS, _NR),
        _op(_JSET_K, _X32_BIT, jf=1),  # x32 numbers on x86_64
        _op(_RET_K, eperm),
    ]
    for name in _DENIED:
        ops += [_op(_JEQ_K, numbers[name], jf=1), _op(_RET_K, eperm)]
    ops += [_op(_JEQ_K, numbers["clone3"], jf=1), _op(_RET_K, _ERRNO | errno.ENOSYS)]
    ops += [
        _op(_JEQ_K, numbers["clone"], jf=3),
        _op(_LD_W_ABS, _ARG0),  # clone's flags (their low 32 bits)
        _op(_JSET_K, _NAMESPACE_FLAGS, jf=1),
        _op(_RET_K, eperm),
        _op(_RET_K, _ALLOW),
    ]
    return b"".join(ops)
