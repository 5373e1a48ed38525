"""The command line and report files that every benchmark script shares."""

import argparse
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def parser(doc, smoke_help="tiny sizes: checks the code only"):
    """An ArgumentParser described by ``doc``'s first paragraph, with --smoke and --output."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help=smoke_help)
    p.add_argument("--output", type=Path, default=RESULTS,
                   help="folder for the results (default: benchmarks/results)")
    return p


def write_report(output, name, smoke, text, suffix=".md"):
    """Write ``text`` to ``output/name[_smoke]suffix``, creating the folder; return the path."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"{name}{'_smoke' if smoke else ''}{suffix}"
    path.write_text(text)
    return path
