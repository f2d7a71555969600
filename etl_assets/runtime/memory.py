"""Allocator settings that let a process's memory follow what it holds, not what it once held.

A job streams its file chunk by chunk, so what it holds stays small (a few chunks); what the
process's resident memory shows is another matter. Two allocators keep freed memory by
default: Arrow's (mimalloc), which backs pandas' string columns, and glibc's, whose mmap
threshold grows with the largest block ever freed, so later chunk-sized arrays come from a
heap that fragments instead of from mmap. On a 1,000,000-row job in chunks of 50,000
(benchmarks/bench_large_file.py) peak memory was 340 MB with both defaults, 314 MB with
jemalloc for Arrow, and 292 MB with the settings below, at about 5 % of the job's time.

glibc also gives each thread that allocates its own arena (up to 8 per core), and each
arena fragments on its own: the run's threads (the prefetching transform, the heartbeat, the
API clients' pools) kept about 5 MB more at the peak of a 300,000-row job than with two
arenas (257.8 against 252.3 MB, benchmarks/bench_large_file.py).
"""

from __future__ import annotations

import ctypes
import platform

import pyarrow as pa

from etl_assets.config import library_variable

# glibc mallopt parameter: blocks at least this big are mmapped and returned to the system on
# free. Fixing it also stops glibc from raising it after each large free.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 * 1024
# glibc mallopt parameter: how many arenas threads share.
_M_ARENA_MAX = -8
ARENA_MAX = 2


def return_freed_memory() -> None:
    """Use Arrow's system allocator, a fixed glibc mmap threshold and two glibc arenas,
    unless the environment already chose (ARROW_DEFAULT_MEMORY_POOL, MALLOC_MMAP_THRESHOLD_,
    MALLOC_ARENA_MAX)."""
    if not library_variable("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(pa.system_memory_pool())
    if platform.libc_ver()[0] != "glibc":
        return
    libc = ctypes.CDLL(None)
    if library_variable("MALLOC_MMAP_THRESHOLD_") is None:
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    if library_variable("MALLOC_ARENA_MAX") is None:
        libc.mallopt(_M_ARENA_MAX, ARENA_MAX)
