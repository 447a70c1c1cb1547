#!/usr/bin/env python
"""Make the hosted-kernel set-up cell the first code cell of every notebook (idempotent).

    python scripts/add_setup_cell.py --repo https://example.org/you/qwqlab.git
    python scripts/add_setup_cell.py --check        # exit 1 if a notebook lacks the cell

The cell (``qwqlab.teaching.setup_cell_source``) installs qwqlab from ``--repo`` when
``import qwqlab`` fails (a fresh Colab kernel) and does nothing where qwqlab is installed.
``--repo`` defaults to this clone's ``origin`` remote. Outputs are not touched: notebooks
are committed without them.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import nbformat

from qwqlab.figures import list_notebooks
from qwqlab.paths import REPO_ROOT
from qwqlab.teaching import SETUP_TAG, add_setup_cell


def origin_url() -> str | None:
    out = subprocess.run(["git", "-C", str(REPO_ROOT), "remote", "get-url", "origin"], capture_output=True,
                         text=True)
    return out.stdout.strip() or None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/NN_*.ipynb")
    p.add_argument("--repo", help="git URL a hosted kernel clones qwqlab from (default: the origin remote)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook lacks the cell")
    args = p.parse_args(argv)
    paths = args.notebooks or list_notebooks()
    if args.check:
        missing = [str(path) for path in paths if not any(
            SETUP_TAG in c.get("metadata", {}).get("tags", []) for c in nbformat.read(path, as_version=4).cells)]
        for m in missing:
            print(f"{m}: no set-up cell (run scripts/add_setup_cell.py)")
        return 1 if missing else 0
    repo = args.repo or origin_url()
    if not repo:
        print("no --repo and no 'origin' remote: the cell will ask for $QWQLAB_REPO when qwqlab is missing")
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        changed = add_setup_cell(nb, repo)
        if changed:
            nbformat.write(nb, path)
        print(f"{path}: {'set-up cell written' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
