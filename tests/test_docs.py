"""The contributor and reader docs point only at files that are in the repository."""
import re

import pytest

from qwqlab.paths import REPO_ROOT

DOCS = ["CONTRIBUTING.md", "README.md", "notebooks/README.md"]
ROOTS = ("qwqlab/", "notebooks/", "data/", "scripts/", "tests/", "docs/", "configs/", "benchmarks/")


def _targets(path):
    text = (REPO_ROOT / path).read_text()
    links = re.findall(r"\]\(([^)#\s]+)\)", text)
    code = [c for c in re.findall(r"`([^`\s]+)`", text) if c.startswith(ROOTS) or c.startswith("../")]
    return [(link, (REPO_ROOT / path).parent / link) for link in links if "://" not in link] + \
        [(c, REPO_ROOT / c.rstrip("/")) for c in code]


@pytest.mark.parametrize("doc", DOCS)
def test_doc_links_and_paths_exist_in_the_repository(doc):
    for shown, target in _targets(doc):
        assert not shown.startswith("../"), f"{doc} points outside the repository: {shown}"
        if any(ch in shown for ch in "*{}|<>"):  # a pattern such as data/runs/*/log.jsonl, not a file
            continue
        assert target.exists(), f"{doc} names {shown}, which is not in the repository"
