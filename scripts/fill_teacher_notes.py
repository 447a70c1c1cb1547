#!/usr/bin/env python
"""Write each notebook's run time into the teacher's notes, from `qwqlab figures`' manifest.

    make figures                                  # runs every notebook, writes figures/manifest.json
    python scripts/fill_teacher_notes.py          # fills notebooks/README.md and each notebook's intro

Only the text between ``<!-- run-time:STEM -->`` and ``<!-- /run-time -->`` markers (and
the ``<!-- measured -->`` note) changes; see ``qwqlab.teaching.fill_run_times``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qwqlab.paths import REPO_ROOT
import json

from qwqlab.teaching import fill_notebook_run_times, fill_run_times, fill_run_times_file


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", type=Path, default=REPO_ROOT / "figures" / "manifest.json")
    p.add_argument("--notes", type=Path, default=REPO_ROOT / "notebooks" / "README.md")
    p.add_argument("--notebooks", type=Path, help="folder of notebooks whose intros to fill (default: the "
                                                  "notes' folder when it is notebooks/)")
    p.add_argument("--cores", type=int, help="CPU cores of the machine that ran `qwqlab figures` "
                                              "(default: this machine's)")
    args = p.parse_args(argv)
    if not args.manifest.exists():
        p.error(f"{args.manifest} does not exist: run `make figures` (or `qwqlab figures --out DIR`) first")
    times = fill_run_times_file(args.notes, args.manifest, cores=args.cores)
    for name, seconds in times.items():
        print(f"{name}: {seconds} s")
    print(f"wrote {args.notes}")
    if args.notes.resolve() == (REPO_ROOT / "notebooks" / "README.md").resolve():  # the repo's own notes
        readme = REPO_ROOT / "README.md"
        readme.write_text(fill_run_times(readme.read_text(), json.loads(args.manifest.read_text())))
        print(f"wrote {readme}")
    if args.notes.parent.resolve() == (REPO_ROOT / "notebooks").resolve() or args.notebooks:
        for path in fill_notebook_run_times(args.notebooks or args.notes.parent, json.loads(args.manifest.read_text())):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
