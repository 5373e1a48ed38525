"""The machine and software a benchmark runs on: its description, the commit, optional packages."""

import os
import platform
import sys
from pathlib import Path


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


def git_commit():
    """Short hash of the checkout's HEAD, with ``+changes`` if the tree differs from it."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" +changes" if dirty.strip() else "")


def has_umap():
    """Whether umap-learn (the ``bench`` extra) is installed."""
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def describe(commit=None, gpu=None):
    """Markdown lines: CPU, cores, memory, the GPU used (if any), OS, Python and library versions."""
    import numpy
    import sklearn
    import torch

    import skvae

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"- CPU: {_cpu_model()}, {cores} cores available to the process, "
        f"{_memory_gib():.0f} GiB memory, " + (f"GPU: {gpu}" if gpu else "no GPU used"),
        f"- OS: {platform.platform()}",
        f"- Python {sys.version.split()[0]}, numpy {numpy.__version__}, "
        f"scikit-learn {sklearn.__version__}, torch {torch.__version__}, "
        f"skvae {skvae.__version__}, commit {commit or git_commit()}",
    ]
