"""One-paragraph description of the machine and software a benchmark ran on."""

import os
import platform
import sys


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return float("nan")


def describe():
    """Markdown lines: CPU, cores, memory, OS, Python and library versions."""
    import numpy
    import sklearn
    import torch

    import skvae

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"- CPU: {_cpu_model()}, {cores} cores available to the process, "
        f"{_memory_gib():.0f} GiB memory, no GPU used",
        f"- OS: {platform.platform()}",
        f"- Python {sys.version.split()[0]}, numpy {numpy.__version__}, "
        f"scikit-learn {sklearn.__version__}, torch {torch.__version__}, "
        f"skvae {skvae.__version__}",
    ]
