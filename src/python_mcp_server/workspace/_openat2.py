"""openat2(2) through ctypes: Python's `os` has no binding for it (Linux 5.6+).

`Openat2.open_no_links` asks the kernel to open a path under a directory descriptor in one step,
refusing any symlink, any magic link and any step that leaves the directory. It is the fast path
of `workspace.beneath`: a refusal, or a kernel without openat2 (too old, or a seccomp filter that
answers ENOSYS or EPERM), sends the caller to the component-by-component walk.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08

_SYSCALL_NUMBER = {"x86_64": 437, "aarch64": 437}
"""openat2's number where we know it (the unified syscall table since Linux 5.1)."""

_UNAVAILABLE = frozenset({errno.ENOSYS, errno.EPERM})


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


class Openat2:
    """openat2 on this machine; `usable` is False where it cannot be called."""

    def __init__(self) -> None:
        number = _SYSCALL_NUMBER.get(platform.machine())
        self._number = number or 0
        self._syscall = None
        if number is not None:
            self._syscall = ctypes.CDLL(None, use_errno=True).syscall
            self._syscall.restype = ctypes.c_long
        self.usable = self._syscall is not None and self._probe()

    def _probe(self) -> bool:
        """Whether the kernel answers openat2 (a seccomp filter may say ENOSYS or EPERM)."""
        root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.close(self._call(root, ".", os.O_PATH | os.O_DIRECTORY, 0, RESOLVE_BENEATH))
        except OSError as exc:
            if exc.errno in _UNAVAILABLE:
                return False
            raise
        finally:
            os.close(root)
        return True

    def open_no_links(self, dir_fd: int, path: str, flags: int, mode: int = 0o666) -> int:
        """Open `path` under `dir_fd` with no symlink anywhere on the way and nothing outside it.

        OSError with ELOOP: a symlink is on the way; EXDEV: the path leaves `dir_fd`; ENOSYS: no
        openat2 here.
        """
        if not self.usable:
            raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS), path)
        resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
        return self._call(dir_fd, path, flags, mode, resolve)

    def _call(self, dir_fd: int, path: str, flags: int, mode: int, resolve: int) -> int:
        assert self._syscall is not None
        mode = mode if flags & (os.O_CREAT | os.O_TMPFILE) else 0  # else EINVAL
        how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
        fd = int(
            self._syscall(
                ctypes.c_long(self._number),
                ctypes.c_int(dir_fd),
                ctypes.c_char_p(os.fsencode(path)),
                ctypes.byref(how),
                ctypes.c_size_t(ctypes.sizeof(how)),
            )
        )
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return fd
