"""The sandbox's seccomp program, run through a small classic-BPF interpreter (no kernel needed):
what it answers for each kind of system call, on each architecture it knows. The hostile-cell
tests check the same filter loaded for real (a cell cannot make a user namespace)."""

from __future__ import annotations

import errno
import struct

import pytest

from python_mcp_server.sandbox.seccomp import ARCHES, filter_program

ALLOW = 0x7FFF0000
EPERM = 0x00050000 | errno.EPERM
ENOSYS = 0x00050000 | errno.ENOSYS
CLONE_THREAD_FLAGS = 0x003D0F00  # what pthread_create passes: VM|FS|FILES|SIGHAND|THREAD|...
CLONE_NEWUSER = 0x10000000


def run(program: bytes, arch: int, nr: int, arg0: int = 0) -> int:
    """Evaluate a seccomp cBPF program on one system call (the opcodes our program uses)."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    ops = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = (int(v) for v in ops[pc])
        if code == 0x20:  # ld w abs
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code == 0x15:  # jeq k
            pc += 1 + (jt if acc == k else jf)
        elif code == 0x45:  # jset k
            pc += 1 + (jt if acc & k else jf)
        elif code == 0x06:  # ret k
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x} at {pc}")


@pytest.mark.parametrize("machine", sorted(ARCHES))
def test_namespace_and_mount_calls_are_refused(machine: str) -> None:
    program = filter_program(machine)
    assert program is not None
    arch, numbers = ARCHES[machine]
    for name in ("unshare", "setns", "mount", "ptrace", "bpf", "io_uring_setup", "keyctl"):
        assert run(program, arch, numbers[name]) == EPERM, name


@pytest.mark.parametrize("machine", sorted(ARCHES))
def test_clone_may_make_threads_and_processes_but_no_namespace(machine: str) -> None:
    program = filter_program(machine)
    assert program is not None
    arch, numbers = ARCHES[machine]
    clone = numbers["clone"]
    assert run(program, arch, clone, CLONE_THREAD_FLAGS) == ALLOW
    assert run(program, arch, clone, 17) == ALLOW  # fork: SIGCHLD only
    assert run(program, arch, clone, 17 | CLONE_NEWUSER) == EPERM
    assert run(program, arch, clone, 17 | 0x40000000) == EPERM  # CLONE_NEWNET
    assert run(program, arch, numbers["clone3"]) == ENOSYS


@pytest.mark.parametrize("machine", sorted(ARCHES))
def test_everything_else_is_allowed(machine: str) -> None:
    program = filter_program(machine)
    assert program is not None
    arch, numbers = ARCHES[machine]
    denied = set(numbers.values())
    for nr in range(450):
        if nr not in denied:
            assert run(program, arch, nr) == ALLOW, nr


def test_another_abi_is_refused() -> None:
    program = filter_program("x86_64")
    assert program is not None
    arch, _ = ARCHES["x86_64"]
    assert run(program, 0x40000003, 310) == EPERM  # i386's process_vm_readv, via int 0x80
    assert run(program, arch, 0x40000000 | 272) == EPERM  # x32's unshare
    assert run(program, arch, 0x40000000 | 0) == EPERM  # x32's read


def test_an_unknown_architecture_has_no_filter() -> None:
    assert filter_program("riscv64") is None
