"""Every notebook ends with Exercises: each solution passes its check, the empty cell and a wrong answer do not."""
import nbformat
import pytest

from qwqlab import teaching
from qwqlab.figures import list_notebooks

NOTEBOOKS = list_notebooks()


def _exercise_cells(path):
    nb = nbformat.read(path, as_version=4)
    start = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("## Exercises"))
    cells = nb.cells[start:]
    return ([c for c in cells if "exercise" in c.metadata.get("tags", [])],
            [c for c in cells if "solution" in c.metadata.get("tags", [])], start, len(nb.cells))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_notebook_ends_with_2_to_4_exercises_and_folded_solutions(path):
    exercises, solutions, start, _ = _exercise_cells(path)
    assert 2 <= len(exercises) == len(solutions) <= 4
    for s in solutions:
        assert s.metadata["jupyter"]["source_hidden"] is True  # folded in JupyterLab
    names = {n for n, (nb, _) in teaching.EXERCISES.items() if nb == path.name[:2]}
    assert {teaching_name(c) for c in exercises} == names


def teaching_name(cell) -> str:
    return cell.source.split('teaching.check("')[1].split('"')[0]


def _run(source):
    namespace = {}
    exec(compile("from qwqlab import teaching\n" + source, "<cell>", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_solutions_pass_and_empty_answers_do_not(path):
    exercises, solutions, _, _ = _exercise_cells(path)
    for ex, sol in zip(exercises, solutions):
        name = teaching_name(ex)
        empty = _run(ex.source)["answer"]
        assert not teaching.check(name, empty), name
        verdict = teaching.check(name, _run(sol.source)["answer"])
        assert verdict.ok, (name, verdict)
        assert sol.source.rstrip().endswith(f'teaching.check("{name}", answer)')


WRONG = {  # a plausible mistake for each exercise; its verdict must say "not yet" and give a hint
    "kv_cache_per_token": 40 * 64 * 128 * 2 * 2 / 1024,   # attention heads instead of KV heads
    "kv_crossover": 8192, "pass_at_k": 4 / 16, "majority_answer": "12", "truncation": "a",
    "equal_rewards": [1.0] * 8, "rare_right": (1.0, 1.0), "soft_overlong": -1.0, "zero_spread": 1 / 3,
    "clipped_loss": -1.5, "k3": 0.5, "marker_rate": 17.5, "short_bucket": "a",
    "points_per_active_b": (79.5 / 32.8, 79.8 / 671), "preview_sources": {44.0: "R1-paper", 50.0: "R1-README"},
    "gpqa_origin": ("QwQ-32B", "GPQA-Diamond"),
}


@pytest.mark.parametrize("name", list(teaching.EXERCISES))
def test_a_wrong_answer_gets_a_hint(name):
    verdict = teaching.check(name, WRONG[name])
    assert not verdict.ok and "Hint:" in verdict.message, verdict
    assert repr(verdict).startswith("Not yet.") and "Not yet." in verdict._repr_html_()


def test_an_unknown_exercise_says_which_exist():
    with pytest.raises(ValueError, match="kv_crossover"):
        teaching.check("nope", 1)
