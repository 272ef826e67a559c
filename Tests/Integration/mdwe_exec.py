"""exec a program with "memory deny write execute" enforced by the kernel.

    python3 mdwe_exec.py PROGRAM [ARG...]

What s3cache.service's ``MemoryDenyWriteExecute=yes`` asks of systemd, done without systemd:
``prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)`` (Linux 6.3+) makes the kernel refuse any
mapping that is writable and executable, and any change that makes a mapping executable; the
setting survives ``execve`` and is inherited by every thread and child. ``PR_SET_NO_NEW_PRIVS``
(the unit's ``NoNewPrivileges=yes``) is set too. A program that needs to generate code at run
time fails under it the way it would under the unit.
"""

import ctypes
import os
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_GET_MDWE = 66
PR_MDWE_REFUSE_EXEC_GAIN = 1
# Exit status when the kernel cannot do it (too old): the caller skips rather than fails.
EXIT_UNSUPPORTED = 95


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: mdwe_exec.py PROGRAM [ARG...]")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        sys.exit(f"mdwe_exec: PR_SET_NO_NEW_PRIVS failed: {os.strerror(ctypes.get_errno())}")
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        print(f"mdwe_exec: PR_SET_MDWE failed: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        sys.exit(EXIT_UNSUPPORTED)
    if libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) & PR_MDWE_REFUSE_EXEC_GAIN == 0:
        sys.exit("mdwe_exec: PR_SET_MDWE did not take effect")
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
