"""Keep large tensor buffers inside the process instead of handing them back to the OS every batch.

glibc's malloc serves a request above its mmap threshold with freshly mapped pages and returns
free heap memory above its trim threshold to the OS. Both start at 128 KB and adapt only on some
frees, so a CNN's activations (tens of MB per batch) keep being mapped and unmapped, and every
forward pass pays page faults for them: 10,000 noisy forwards of the MNIST CNN took 2.8-3.2 s
with the defaults and 2.2-2.4 s with both thresholds raised (2 threads). Setting only one of the
two switches off glibc's adaptation of the other and was slower still (3.8-4.6 s), so
:func:`tune_allocator` always sets both.

It changes process-wide state, so the library never calls it on import: the ``trustlab``
command does at start (``TRUSTLAB_MALLOC_TUNING=0`` opts out), and library users may call it
once. Elsewhere than glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 << 20
TRIM_THRESHOLD = 256 << 20
OPT_OUT = "TRUSTLAB_MALLOC_TUNING"


def tune_allocator(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Raise glibc malloc's mmap and trim thresholds (bytes); True when both were set.

    False, changing nothing, where the C library is not glibc or ``TRUSTLAB_MALLOC_TUNING=0``.
    The process may then keep up to ``trim_threshold`` bytes of freed memory for reuse.
    """
    if os.environ.get(OPT_OUT, "").strip() == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no C library by that name, or not glibc's malloc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(
        mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))
    )
