"""The rollout file's refusals (issue 22, part 4): rows that cannot be continued, and one writer per file
whatever name (symlink, hard link) it is reached by. On the bigram fake: each call is well under a second."""
from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import torch

from qwqlab.rollouts import ResumeError, RolloutFileBusy, RolloutStore, sample
from qwqlab.tasks import ArithmeticTask

SMALL = dict(num_generations=2, max_new_tokens=16, progress=False)  # small for speed


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def task():
    return ArithmeticTask()


def test_a_file_of_minimal_rows_is_refused_before_anything_is_written(fake, task, tmp_path):
    """It used to append the new rows, then fail in to_frame with IntCastingNaNError."""
    model, tok = fake
    problems = task.problems(3)
    out = tmp_path / "minimal.jsonl"
    out.write_text("".join(json.dumps({"problem_id": p.id, "sample_index": 0, "completion": "x"}) + "\n"
                           for p in problems[:2]))
    before = out.read_bytes()
    with pytest.raises(ResumeError, match=r"row 1, has no \['question'.*left untouched"):
        sample(model, tok, problems, task, out=out, resume=True, **SMALL)
    assert out.read_bytes() == before
    # the same for a row that lost one setting, or the grade of a graded run
    full = tmp_path / "full.jsonl"
    sample(model, tok, problems[:1], task, out=full, **SMALL)
    rows = [json.loads(line) for line in full.read_text().splitlines()]
    for column in ("seed", "correct"):
        damaged = tmp_path / f"no-{column}.jsonl"
        damaged.write_text("".join(json.dumps({k: v for k, v in r.items() if k != column}) + "\n" for r in rows))
        with pytest.raises(ResumeError, match=rf"has no \['{column}'\]"):
            sample(model, tok, problems, task, out=damaged, resume=True, **SMALL)
    assert len(sample(model, tok, problems, task, out=full, resume=True, **SMALL)) == 6  # whole rows continue


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_one_writer_per_file_under_any_name(fake, task, tmp_path, suffix):
    """The lock was keyed on the path as spelled: two writers through a symlink or a hard link both wrote."""
    model, tok = fake
    problems = task.problems(3)
    real = tmp_path / f"real{suffix}"
    sample(model, tok, problems[:1], task, out=real, **SMALL)
    symlink = tmp_path / f"symlink{suffix}"
    symlink.symlink_to(real)
    hardlink = tmp_path / f"hardlink{suffix}"
    os.link(real, hardlink)
    before = real.read_bytes()
    for held, other in [(real, symlink), (real, hardlink), (hardlink, real), (symlink, hardlink)]:
        holder = RolloutStore(held)  # another process's sample() holds it (flock is per open file)
        holder.lock()
        try:
            with pytest.raises(RolloutFileBusy, match="being written by another process"):
                sample(model, tok, problems, task, out=other, resume=True, **SMALL)
        finally:
            holder.unlock()
        assert real.read_bytes() == before
    # free again: resuming through the symlink writes the real file, and the link stays a link
    df = sample(model, tok, problems, task, out=symlink, resume=True, **SMALL)
    assert symlink.is_symlink() and len(df) == 6
    on_disk = pd.read_json(real, lines=True) if suffix == ".jsonl" else pd.read_parquet(real)
    assert len(on_disk) == 6 and not on_disk.duplicated(["problem_id", "sample_index"]).any()


def test_a_file_created_by_the_run_is_locked_by_inode_once_it_exists(fake, task, tmp_path):
    """A run that starts the file holds its inode from the first batch on, so a hard link made later is refused."""
    model, tok = fake
    out = tmp_path / "new.jsonl"
    store = RolloutStore(out)
    store.lock()
    try:
        store.append([{"problem_id": "a", "sample_index": 0, "completion": "x"}])
        os.link(out, tmp_path / "later.jsonl")
        with pytest.raises(RolloutFileBusy, match="hard link"):
            RolloutStore(tmp_path / "later.jsonl").lock()
    finally:
        store.unlock()
    RolloutStore(tmp_path / "later.jsonl").lock()  # released with the writer


def test_a_server_s_rows_without_a_tokenizer_keep_missing_counts_missing(task):
    """backend='openai' with no tokenizer: usage gives completion_tokens; think/answer counts stay <NA>, not 0."""
    from qwqlab.backends import TextCompletion
    from qwqlab.rollouts import _make_row, to_frame

    problem = task.problems(1)[0]
    done = TextCompletion(f"...\n</think>\n\nThe answer is \\boxed{{{problem.answer}}}.", 17, "stop", "...")
    cut = TextCompletion("1+2=", None, "length", "1+2=")
    rows = [_make_row(c, problem, i, "[]", None, task, {"backend": "openai"}) for i, c in enumerate([done, cut])]
    df = to_frame(rows)
    assert str(df["think_tokens"].dtype) == "Int64" and df["think_tokens"].isna().all()
    assert df["completion_tokens"].tolist()[0] == 17 and pd.isna(df["completion_tokens"].tolist()[1])
    assert df["correct"].tolist() == [1.0, 0.0] and df["is_truncated"].tolist() == [False, True]
    assert df["thinking"].tolist() == ["...", "1+2="] and pd.isna(df["extracted_answer"].tolist()[1])
