"""The heap trimmer gives freed C heap back, and trims only after the RSS has grown."""

import ctypes
import subprocess
import sys

import pytest

from fargo.heap import HeapTrimmer, resident_bytes
from tests.conftest import ROOT

pytestmark = pytest.mark.pure

libc = ctypes.CDLL(None)
libc.malloc.argtypes, libc.malloc.restype = [ctypes.c_size_t], ctypes.c_void_p
libc.free.argtypes, libc.free.restype = [ctypes.c_void_p], None
BLOCK, COUNT, KEEP_EVERY = 2000, 32_000, 64  # 64 MB in blocks below the mmap threshold


def _fragment() -> list[int]:
    """Touches 64 MB of heap, then frees all but one block in 64: the freed pages stay
    resident (a kept block above them stops the heap shrinking from its top)."""
    blocks = [libc.malloc(BLOCK) for _ in range(COUNT)]
    assert all(blocks)
    for b in blocks:
        ctypes.memset(b, 1, BLOCK)
    kept = blocks[::KEEP_EVERY]
    for i, b in enumerate(blocks):
        if i % KEEP_EVERY:
            libc.free(b)
    return kept


def test_freed_heap_is_given_back_and_only_after_growth() -> None:
    trimmer = HeapTrimmer(slack=16 << 20)
    if trimmer._trim is None:
        pytest.skip("no malloc_trim in this C library")
    trimmer.trim_if_grown()  # the floor: this process as it is
    assert trimmer.trim_if_grown() == 0  # not grown: no trim
    kept = _fragment()
    try:
        grown = resident_bytes()
        given = trimmer.trim_if_grown()
        assert given > 40 << 20, f"gave back {given / 1e6:.1f} MB"
        assert resident_bytes() < grown - (40 << 20)
        assert trimmer.trim_if_grown() == 0  # nothing new since
    finally:
        for b in kept:
            libc.free(b)


ARENAS_PROBE = """
import ctypes, sys, threading
from fargo.heap import limit_arenas
assert limit_arenas(2)
libc = ctypes.CDLL(None)
libc.malloc.argtypes, libc.malloc.restype = [ctypes.c_size_t], ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
start = threading.Barrier(8)
def work():
    start.wait()
    for _ in range(20000):  # ctypes drops the GIL for each call: the threads contend
        libc.free(libc.malloc(100))
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc.fopen.argtypes, libc.fopen.restype = [ctypes.c_char_p, ctypes.c_char_p], ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
f = libc.fopen(sys.argv[1].encode(), b"w")
libc.malloc_info(0, f)
libc.fclose(f)
"""


def test_threads_share_two_arenas_once_limited(tmp_path) -> None:
    out = tmp_path / "malloc_info.xml"
    subprocess.run([sys.executable, "-c", ARENAS_PROBE, str(out)], check=True,
                   cwd=ROOT, timeout=60)
    assert 1 <= out.read_text().count("<heap nr=") <= 2, out.read_text()[:500]
