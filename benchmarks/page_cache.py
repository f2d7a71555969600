"""Put the shared libraries' page cache in the state a machine that has run the code is in,
before a benchmark measures a process's resident memory.

A process's RSS counts the pages of its shared libraries that it maps, and how many it maps
depends on how those files sit in the page cache, not on the process. Files the installer
has just written sit there in large folios, and a page fault maps a whole folio: the job's
run process showed 97.7 MB of file-backed RSS right after `make install` and 59.4 MB once
the same files had been read back by page faults (the same 137 MB anonymous both times;
Linux 6.18, ext4). Evicting the libraries' cached pages first makes the figure the second
one, whatever ran before the benchmark.

Standard library only, and to be called before the benchmark imports pandas or Arrow: the
kernel does not evict pages that a process has mapped.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def evict_shared_libraries(*other_environments: Path) -> str:
    """Drop the cached pages of every shared object of this interpreter's environment, its
    base installation and `other_environments`; returns what was done, to print."""
    started = time.perf_counter()
    roots = sorted({Path(sys.prefix), Path(sys.base_prefix), *other_environments})
    os.sync()  # written pages must be clean to be dropped
    evicted = 0
    for root in roots:
        for path in root.rglob("*.so*"):
            if not path.is_file() or not _is_shared_object(path.name):
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                evicted += 1
            finally:
                os.close(fd)
    places = ", ".join(str(root) for root in roots)
    return (
        f"page cache: dropped the cached pages of {evicted} shared libraries under {places} "
        f"in {time.perf_counter() - started:.1f} s (memory is measured with them read back "
        "by page faults, not as an installer left them)"
    )


def _is_shared_object(name: str) -> bool:
    # libarrow.so.2600, lib.cpython-311-x86_64-linux-gnu.so; not e.g. a file named x.sol
    return name.endswith(".so") or ".so." in name
