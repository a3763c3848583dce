"""The default seccomp profile of every container, in the OCI runtime-spec format.

A denylist: every syscall is allowed except those below, which fail with EPERM (clone3 with
ENOSYS, so libcs fall back to clone, whose flags seccomp can inspect). Docker's profile is an
allowlist; a denylist is shorter to audit here because the user namespace and the capability
set already refuse most privileged calls, and this adds a second wall in front of the kernel
code that has most often been the way out (module loading, bpf, perf, keyrings, mounts,
namespace creation, userfaultfd, io_uring, handle-based opens).
"""

from __future__ import annotations

import errno
from typing import Any

# Syscalls no container may make, whatever capabilities it has.
BLOCKED = (
    # mounts and the root: a container gets its filesystem from fargo, never makes its own
    "mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # kernel code and the machine itself
    "init_module", "finit_module", "delete_module", "create_module", "query_module",
    "get_kernel_syms", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff",
    "acct", "quotactl", "quotactl_fd", "nfsservctl", "syslog", "uselib", "vhangup",
    "iopl", "ioperm", "vm86", "vm86old", "lookup_dcookie", "_sysctl", "sysfs", "ustat",
    # the clock is the host's
    "settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex", "clock_adjtime",
    "clock_adjtime64",
    # large attack surfaces no task needs
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "fanotify_init", "open_by_handle_at", "name_to_handle_at",
    "add_key", "request_key", "keyctl",
    # namespaces: a task keeps the ones fargo made for it
    "unshare", "setns",
)
# Usable only with SYS_PTRACE added (Fargate's one addable capability).
PTRACE = ("ptrace", "process_vm_readv", "process_vm_writev", "kcmp")

# clone flags that make new namespaces (CLONE_NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC,
# NEWUSER, NEWPID, NEWNET); clone with any of them fails like unshare.
NAMESPACE_FLAGS = (0x80, 0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000,
                   0x40000000)


def profile(caps: list[str]) -> dict[str, Any]:
    """The OCI `linux.seccomp` object for a container holding `caps`."""
    blocked = list(BLOCKED)
    if "CAP_SYS_PTRACE" not in caps:
        blocked += PTRACE
    syscalls: list[dict[str, Any]] = [
        {"names": sorted(blocked), "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
    ]
    # One rule per flag: seccomp can test "these bits all set", not "any of these bits set",
    # and rules for the same syscall are OR'ed.
    for flag in NAMESPACE_FLAGS:
        syscalls.append({
            "names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM,
            "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
        })
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    }
