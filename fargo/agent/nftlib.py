"""nftables transactions in-process, through libnftables (the library the `nft` command is).

A task's start puts it into its security groups' sets and sets the metadata DNAT in its
netns: spawning `nft -f` for each costs a fork and exec from a large process, a few ms of CPU
per task. The library runs the same text in the calling thread, in whatever network namespace
that thread is in, as one atomic transaction, exactly as `nft -f` would."""

from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import threading

from ..port.errors import FirewallError


class NftError(FirewallError):
    """nft refused or failed; the message carries its error output."""


_lib: ctypes.CDLL | None = None
_loaded = threading.Lock()


def _library() -> ctypes.CDLL | None:
    """libnftables, or None where it cannot be loaded (then the `nft` command is used)."""
    global _lib
    with _loaded:
        if _lib is None:
            name = ctypes.util.find_library("nftables") or "libnftables.so.1"
            try:
                lib = ctypes.CDLL(name)
            except OSError:
                return None
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            _lib = lib
        return _lib


def run(text: str) -> None:
    """Apply one ruleset text atomically in the calling thread's network namespace."""
    lib = _library()
    if lib is None:
        res = subprocess.run(["nft", "-f", "-"], input=text, capture_output=True, text=True,
                             check=False, timeout=30)
        if res.returncode != 0:
            raise NftError(f"nft failed: {res.stderr.strip()[:2000]}")
        return
    # A context per call: its netlink socket belongs to this thread's namespace, and
    # contexts are not shared between threads.
    ctx = lib.nft_ctx_new(0)
    if not ctx:
        raise NftError("nft failed: cannot create an nftables context")
    try:
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        if lib.nft_run_cmd_from_buffer(ctx, text.encode()) != 0:
            err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
            raise NftError(f"nft failed: {err.strip()[:2000]}")
    finally:
        lib.nft_ctx_free(ctx)
