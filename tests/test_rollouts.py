"""qwqlab.rollouts: the tidy table, resuming after SIGKILL, OOM halving, vLLM path.

Most tests run on a bigram fake (tests/fixtures/fake_lm.py: a real Qwen2 model with fixed
logits, built in under a second); a few check properties on the bundled qwq-nano.
"""
from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch

from qwqlab.chat import build_prompt, split_think
from qwqlab.decoding import generate
from qwqlab.rollouts import COLUMNS, ResumeError, RolloutFileBusy, RolloutStore, sample, weights_fingerprint
from qwqlab.tasks import ArithmeticTask, Problem

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(FIXTURES))
from fake_lm import OOMModel, fake_tokenizer  # noqa: E402

NANO = REPO / "data" / "models" / "qwq-nano" / "config.json"
needs_nano = pytest.mark.skipif(not NANO.exists(), reason="the bundled qwq-nano checkpoint is not in data/models yet")
SMALL = dict(num_generations=3, max_new_tokens=24, progress=False)  # small for speed


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny matmuls: a second thread only adds contention on a shared 2-core machine.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def tok(fake):
    return fake[1]


@pytest.fixture(scope="module")
def model(fake):
    return fake[0]


@pytest.fixture(scope="module")
def task():
    return ArithmeticTask()


@pytest.fixture(scope="module")
def problems(task):
    return task.problems(4)


@pytest.fixture(scope="module")
def table(model, tok, problems, task):
    return sample(model, tok, problems, task, batch_size=5, **SMALL)


# ----------------------------------------------------------------------------- the table

def test_table_has_glossary_columns_and_consistent_counts(table, problems):
    assert list(table.columns) == COLUMNS
    assert len(table) == len(problems) * 3
    assert list(table["problem_id"]) == [p.id for p in problems for _ in range(3)]
    assert list(table["sample_index"]) == [0, 1, 2] * len(problems)
    assert set(table["finish_reason"]) <= {"stop", "length"}
    assert (table["is_truncated"] == (table["finish_reason"] == "length")).all()
    assert (table["completion_tokens"] <= 24).all()
    assert (table.loc[table.is_truncated, "completion_tokens"] == 24).all()
    tok = fake_tokenizer()
    for row in table.itertuples():
        parts = split_think(row.completion)
        assert (row.thinking, row.answer_text) == (parts.thinking, parts.answer)
        # the one counter: the tokens of the thinking and answer texts, never more than were generated
        assert row.think_tokens == len(tok(row.thinking, add_special_tokens=False)["input_ids"])
        assert row.answer_tokens == len(tok(row.answer_text, add_special_tokens=False)["input_ids"])
        assert row.think_tokens + row.answer_tokens + (parts.case != "unclosed") <= row.completion_tokens
        assert row.correct in (0.0, 1.0)
        assert row.prompt == build_prompt(tok, row.question)
    settings = table[["temperature", "top_p", "top_k", "max_new_tokens", "seed", "num_generations"]].drop_duplicates()
    assert settings.values.tolist() == [[0.6, 0.95, 40, 24, 0, 3]]
    assert set(table["model"]) == {"fake-bigram"} and set(table["task"]) == {"arithmetic"}


def test_grading_matches_the_task(table, problems, task):
    by_id = {p.id: p for p in problems}
    for row in table.itertuples():
        assert row.correct == task.grade(row.completion, by_id[row.problem_id])


def test_deterministic_for_a_seed_and_independent_of_batch_size(model, tok, problems, task, table):
    again = sample(model, tok, problems, task, batch_size=12, **SMALL)
    pd.testing.assert_frame_equal(table, again)
    one_by_one = sample(model, tok, problems[:2], task, batch_size=1, **SMALL)
    pd.testing.assert_frame_equal(table.iloc[:6].reset_index(drop=True), one_by_one)
    other = sample(model, tok, problems, task, batch_size=12, **{**SMALL, "seed": 1})
    assert list(other["completion"]) != list(table["completion"])


def test_shorter_max_new_tokens_gives_prefixes(model, tok, problems, table):
    short = sample(model, tok, problems, None, batch_size=12, **{**SMALL, "max_new_tokens": 8})
    assert "correct" not in short.columns
    for long_text, short_text in zip(table["completion"], short["completion"]):
        assert long_text.startswith(short_text)


def test_greedy_is_the_same_for_every_sample(model, tok, problems):
    df = sample(model, tok, problems[:2], temperature=0, **SMALL)
    assert df.groupby("problem_id")["completion"].nunique().eq(1).all()


def test_generate_keeps_its_behaviour(model, tok):
    """nano.measure relies on generate(): prompt-major order, seeded, stop/length reasons."""
    prompts = [build_prompt(tok, "What is 12+35?"), build_prompt(tok, "What is 7+5?")]
    a = generate(model, tok, prompts, num_generations=2, max_new_tokens=16, seed=3)
    b = generate(model, tok, prompts, num_generations=2, max_new_tokens=16, seed=3)
    assert [(g.prompt_index, g.sample_index) for g in a] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [g.text for g in a] == [g.text for g in b]
    assert all(g.finish_reason in ("stop", "length") and g.num_tokens <= 16 for g in a)
    gens, (seqs, plen) = generate(model, tok, prompts, 1, max_new_tokens=4, return_tensors=True)
    assert seqs.shape[0] == 2 and plen > 0


# ----------------------------------------------------------------------------- bad input

def test_bad_input_is_rejected_clearly(model, tok, problems, task):
    with pytest.raises(ValueError, match="empty"):
        sample(model, tok, [], task)
    with pytest.raises(ValueError, match="num_generations"):
        sample(model, tok, problems, task, num_generations=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        sample(model, tok, problems, task, max_new_tokens=0)
    with pytest.raises(ValueError, match="unique"):
        sample(model, tok, [problems[0], problems[0]], task)
    with pytest.raises(ValueError, match="backend"):
        sample(model, tok, problems, task, backend="tgi")
    with pytest.raises(ValueError, match="context"):
        sample(model, tok, problems, task, max_new_tokens=10_000)
    with pytest.raises(ValueError, match="resume=True needs out="):
        sample(model, tok, problems, task, resume=True)


def test_max_new_tokens_none_uses_the_model_default_within_its_context(model, tok, problems):
    df = sample(model, tok, problems[:1], num_generations=1, progress=False)   # fake: no default of its own
    longest = len(tok(df["prompt"][0], add_special_tokens=False)["input_ids"])
    assert df["max_new_tokens"][0] == model.config.max_position_embeddings - longest
    assert df["completion_tokens"][0] <= df["max_new_tokens"][0]


def test_problems_without_answers_are_sampled_and_say_why_ungraded(model, tok, task):
    probs = [Problem("a", "What is 1+2?", "3"), Problem("b", "What is 4+4?", None), "What is 5+6?"]
    with pytest.warns(UserWarning, match="2 of 3 problems have no gold answer"):
        df = sample(model, tok, probs, task, **SMALL)
    assert len(df) == 9
    assert df.loc[df.problem_id == "a", "correct"].notna().all()
    ungraded = df[df.problem_id != "a"]
    assert ungraded["correct"].isna().all() and set(ungraded["grade_note"]) == {"no gold answer"}
    assert list(df["problem_id"].unique()) == ["a", "b", "problem-2"]


# ----------------------------------------------------------------------------- files and resuming

@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_out_file_holds_the_table_and_resume_completes_it(model, tok, problems, task, table, tmp_path, suffix):
    out = tmp_path / f"rollouts{suffix}"
    df = sample(model, tok, problems[:2], task, batch_size=4, out=out, **SMALL)
    written = pd.read_json(out, lines=True) if suffix == ".jsonl" else pd.read_parquet(out)
    assert len(written) == 6
    with pytest.raises(FileExistsError, match="resume=True"):
        sample(model, tok, problems, task, out=out, **SMALL)
    # resume with more problems: the first two are kept, the rest sampled, nothing twice
    full = sample(model, tok, problems, task, batch_size=4, out=out, resume=True, **SMALL)
    pd.testing.assert_frame_equal(full, table)
    written = pd.read_json(out, lines=True) if suffix == ".jsonl" else pd.read_parquet(out)
    assert len(written) == len(table) and not written.duplicated(["problem_id", "sample_index"]).any()
    pd.testing.assert_frame_equal(full.iloc[:6], df)


def test_torn_last_line_is_set_aside_and_resampled(model, tok, problems, task, table, tmp_path):
    out = tmp_path / "r.jsonl"
    sample(model, tok, problems, task, out=out, batch_size=5, **SMALL)
    data = out.read_bytes()
    cut = data.rfind(b"\n", 0, len(data) - 1) + 1
    out.write_bytes(data[:cut + 40])   # a kill in the middle of writing the last row
    with pytest.warns(RuntimeWarning, match="partial line"):
        df = sample(model, tok, problems, task, out=out, resume=True, batch_size=5, **SMALL)
    pd.testing.assert_frame_equal(df, table)
    assert (tmp_path / "r.jsonl.torn-0").read_bytes() == data[cut:cut + 40]


def test_corrupt_or_foreign_resume_files_are_refused_untouched(model, tok, problems, task, tmp_path):
    out = tmp_path / "r.jsonl"
    sample(model, tok, problems[:2], task, out=out, **SMALL)
    lines = out.read_text().splitlines(keepends=True)
    corrupt = tmp_path / "corrupt.jsonl"
    corrupt.write_text(lines[0] + "{not json\n" + "".join(lines[1:]))
    before = corrupt.read_bytes()
    with pytest.raises(ResumeError, match="line 2.*corrupt"):
        sample(model, tok, problems, task, out=corrupt, resume=True, **SMALL)
    assert corrupt.read_bytes() == before
    with pytest.raises(ResumeError, match="temperature=0.6.*temperature=1.0"):
        sample(model, tok, problems, task, out=out, resume=True, **{**SMALL, "temperature": 1.0})
    with pytest.raises(ResumeError, match="problems not in this run"):
        sample(model, tok, problems[2:], task, out=out, resume=True, **SMALL)
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text(lines[0] + '{"question": "What is 1+1?", "answer": "2"}\n')
    with pytest.raises(ResumeError, match="row 2.*not a qwqlab rollout file"):
        sample(model, tok, problems, task, out=foreign, resume=True, **SMALL)
    dup = tmp_path / "dup.jsonl"
    dup.write_text(lines[0] + lines[0])
    with pytest.raises(ResumeError, match="twice"):
        sample(model, tok, problems, task, out=dup, resume=True, **SMALL)
    bad_parquet = tmp_path / "r.parquet"
    bad_parquet.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ResumeError, match="cannot be read as parquet"):
        sample(model, tok, problems, task, out=bad_parquet, resume=True, **SMALL)
    assert bad_parquet.read_bytes() == b"PAR1 this is not parquet"
    with pytest.raises(ValueError, match=".jsonl or .parquet"):
        sample(model, tok, problems, task, out=tmp_path / "r.csv", **SMALL)


def _problems_with(problems, index, **change):
    return [Problem(id=p.id, question=change.get("question", p.question), answer=change.get("answer", p.answer))
            if i == index else p for i, p in enumerate(problems)]


def test_resume_reuses_a_row_only_for_the_same_question_and_gold(model, tok, problems, task, tmp_path):
    """Rows were keyed on (problem_id, sample_index) alone: new questions under old ids got old rows."""
    out = tmp_path / "r.jsonl"
    sample(model, tok, problems[:2], task, out=out, **SMALL)
    before = out.read_bytes()
    for what, change in [("question", {"question": "What is 1 + 1?"}), ("gold_answer", {"answer": "-7"})]:
        changed = _problems_with(problems, 1, **change)
        with pytest.raises(ResumeError, match=rf"problem '{problems[1].id}' with another {what}.*overwrite=True"):
            sample(model, tok, changed, task, out=out, resume=True, **SMALL)
        assert out.read_bytes() == before
    # overwrite=True samples the file afresh for the new problems
    changed = _problems_with(problems, 1, question="What is 1 + 1?", answer="2")
    df = sample(model, tok, changed, task, out=out, overwrite=True, **SMALL)
    pd.testing.assert_frame_equal(df, sample(model, tok, changed, task, **SMALL))
    assert pd.read_json(out, lines=True)["question"].tolist() == [p.question for p in changed for _ in range(3)]
    with pytest.raises(ValueError, match="pass one of them"):
        sample(model, tok, changed, task, out=out, resume=True, overwrite=True, **SMALL)


def test_resume_refuses_rows_made_by_other_weights(model, tok, problems, task, tmp_path):
    out = tmp_path / "r.jsonl"
    sample(model, tok, problems[:2], task, out=out, **SMALL)
    before = out.read_bytes()
    same = copy.deepcopy(model)
    assert weights_fingerprint(same) == weights_fingerprint(model) == pd.read_json(out, lines=True)[
        "weights_fingerprint"].iloc[0]
    trained = copy.deepcopy(model)
    with torch.no_grad():  # one tensor in the middle of the model moves, as a training step would move it
        name, param = list(trained.named_parameters())[len(list(trained.parameters())) // 2]
        param.add_(1e-3 * torch.randn_like(param))
    assert weights_fingerprint(trained) != weights_fingerprint(model), name
    with pytest.raises(ResumeError, match="written by other weights.*overwrite=True"):
        sample(trained, tok, problems, task, out=out, resume=True, **SMALL)
    assert out.read_bytes() == before
    full = sample(same, tok, problems, task, out=out, resume=True, **SMALL)  # the same weights resume
    assert len(full) == len(problems) * 3


def test_a_refused_file_with_a_torn_line_stays_byte_identical(model, tok, problems, task, tmp_path):
    """The torn line used to be moved aside before the settings check, so "left untouched" was false."""
    out = tmp_path / "r.jsonl"
    sample(model, tok, problems, task, out=out, **SMALL)
    data = out.read_bytes()
    out.write_bytes(data[:len(data) - 25])   # killed mid-line
    torn = out.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no "partial line ... moved" warning either
        with pytest.raises(ResumeError, match="temperature=0.6.*temperature=1.0.*left untouched"):
            sample(model, tok, problems, task, out=out, resume=True, **{**SMALL, "temperature": 1.0})
        with pytest.raises(ResumeError, match="another question.*left untouched"):
            sample(model, tok, _problems_with(problems, 0, question="What is 9 + 9?"), task, out=out,
                   resume=True, **SMALL)
    assert out.read_bytes() == torn
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.jsonl.lock", "r.jsonl"]  # no r.jsonl.torn-0


LOCK_HOLDER = textwrap.dedent("""
    import sys, time
    from qwqlab.rollouts import RolloutStore
    store = RolloutStore(sys.argv[1])
    store.lock()
    print("locked", flush=True)
    time.sleep(120)
""")


def test_a_second_writer_is_refused_while_the_first_holds_the_file(model, tok, problems, task, tmp_path):
    """Two processes resuming one file wrote 12 duplicate rows and left it unresumable."""
    out = tmp_path / "r.jsonl"
    sample(model, tok, problems[:2], task, out=out, **SMALL)
    before = out.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(out)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
        with pytest.raises(RolloutFileBusy, match=rf"being written by another process.*pid {holder.pid}"):
            sample(model, tok, problems, task, out=out, resume=True, **SMALL)
        assert out.read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
    # the kernel drops a dead holder's lock: the file resumes
    assert len(sample(model, tok, problems, task, out=out, resume=True, **SMALL)) == len(problems) * 3
    # a second handle in the same process is refused too, and each call lets go when it ends
    other = RolloutStore(out)
    other.lock()
    with pytest.raises(RolloutFileBusy):
        sample(model, tok, problems, task, out=out, resume=True, **SMALL)
    other.unlock()
    with pytest.raises(ResumeError):  # a refused call releases the lock as well
        sample(model, tok, problems, task, out=out, resume=True, **{**SMALL, "temperature": 1.0})
    other.lock()
    other.unlock()


CHILD = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {fixtures!r})
    torch.set_num_threads(1)
    from fake_lm import SlowModel, fake_model, fake_tokenizer
    from qwqlab.rollouts import sample
    from qwqlab.tasks import ArithmeticTask
    tok = fake_tokenizer()
    model = SlowModel(fake_model(tok), delay={delay})
    task = ArithmeticTask()
    sample(model, tok, task.problems(10), task, num_generations=4, max_new_tokens=24, batch_size=4,
           out=sys.argv[1], resume=True, progress=False)
""")


def _rows_in(path: Path) -> int:
    if not path.exists():
        return 0
    if path.suffix == ".jsonl":
        return path.read_bytes().count(b"\n")
    try:
        return len(pd.read_parquet(path))
    except Exception:  # noqa: BLE001 - mid-rename; try again
        return 0


def test_two_runs_resuming_one_file_at_once_write_no_duplicates(model, tok, task, tmp_path):
    """The probe: two processes resuming one file wrote 12 duplicate rows. Now the second is refused."""
    out = tmp_path / "rollouts.jsonl"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(fixtures=str(FIXTURES), delay=0.15))  # 9 batches (>= 1.35 s) after the first
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, str(script), str(out)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while _rows_in(out) < 4 and time.time() < deadline and child.poll() is None:   # mid-run
            time.sleep(0.05)
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        with pytest.raises(RolloutFileBusy, match=f"pid {child.pid}"):
            sample(model, tok, task.problems(10), task, num_generations=4, max_new_tokens=24, batch_size=4,
                   out=out, resume=True, progress=False)
        assert child.wait(timeout=300) == 0, child.stderr.read().decode()[-2000:]
    finally:
        child.kill()
        child.wait()
    final = pd.read_json(out, lines=True)
    assert len(final) == 40 and not final.duplicated(["problem_id", "sample_index"]).any()


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_sigkill_then_resume_loses_and_duplicates_nothing(model, tok, task, tmp_path, suffix):
    """A real run in a subprocess, killed with SIGKILL mid-run, then restarted with resume=True."""
    out = tmp_path / f"rollouts{suffix}"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(fixtures=str(FIXTURES), delay=0.3))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, str(script), str(out)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while _rows_in(out) < 8 and time.time() < deadline and child.poll() is None:   # two batches on disk
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()[-2000:]
    before = _rows_in(out)
    assert 0 < before < 40, "the kill should land mid-run"

    # The restart (in this process, which has torch loaded already: a fresh call reading only the file).
    resumed = sample(model, tok, task.problems(10), task, num_generations=4, max_new_tokens=24, batch_size=4,
                     out=out, resume=True, progress=False)
    final = pd.read_json(out, lines=True) if suffix == ".jsonl" else pd.read_parquet(out)
    dupes = int(final.duplicated(["problem_id", "sample_index"]).sum())
    print(f"\n[resume test {suffix}] rows on disk when killed: {before}; after resume: {len(final)}; "
          f"expected: 40; duplicates: {dupes}")
    assert len(final) == len(resumed) == 40 and dupes == 0
    # the rows equal an uninterrupted run's (keyed sampling: where the kill fell does not matter)
    reference = sample(model, tok, task.problems(10), task, num_generations=4, max_new_tokens=24, batch_size=4,
                       progress=False)
    pd.testing.assert_frame_equal(resumed, reference)
    final = final.sort_values(["problem_id", "sample_index"]).reset_index(drop=True)
    reference = reference.sort_values(["problem_id", "sample_index"]).reset_index(drop=True)
    assert list(final["completion"]) == list(reference["completion"])


# ----------------------------------------------------------------------------- out of memory

def test_cuda_oom_halves_the_batch_and_goes_on(model, tok, problems, task, table):
    flaky = OOMModel(model, max_rows=3)
    with pytest.warns(RuntimeWarning) as record:
        df = sample(flaky, tok, problems, task, batch_size=12, **SMALL)
    assert [str(w.message) for w in record] == [
        "CUDA out of memory at batch_size=12; halving it to 6 and going on.",
        "CUDA out of memory at batch_size=6; halving it to 3 and going on."]
    assert max(flaky.ok_rows) <= 3
    pd.testing.assert_frame_equal(df, table)


def test_oom_at_batch_size_one_is_an_error(model, tok, problems, task):
    with pytest.raises(RuntimeError, match="batch_size=1"):
        with pytest.warns(RuntimeWarning):
            sample(OOMModel(model, max_rows=0), tok, problems, task, batch_size=2, **SMALL)


# ----------------------------------------------------------------------------- vLLM

def _fake_vllm(monkeypatch, tok, calls):
    """A stand-in for the vllm module: SamplingParams records its arguments, LLM.generate echoes."""
    mod = types.ModuleType("vllm")

    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    end = tok.convert_tokens_to_ids("<|im_end|>")
    answer = tok("</think>\n\nThe answer is \\boxed{3}.", add_special_tokens=False)["input_ids"]

    class LLM:
        def __init__(self, model, seed=0):
            self.model = model
            self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(model=model))

        def get_tokenizer(self):
            return tok

        def generate(self, prompts, params, use_tqdm=True):
            calls.append((list(prompts), params))
            outs = []
            for p in params:
                comps = [types.SimpleNamespace(token_ids=answer + [end], finish_reason="stop") if j % 2 == 0 else
                         types.SimpleNamespace(token_ids=(answer * 9)[:p.max_tokens], finish_reason="length")
                         for j in range(p.n)]
                outs.append(types.SimpleNamespace(outputs=comps))
            return outs

    mod.SamplingParams, mod.LLM = SamplingParams, LLM
    monkeypatch.setitem(sys.modules, "vllm", mod)
    return LLM


def test_vllm_backend_groups_samples_per_problem(monkeypatch, tok, task):
    calls = []
    LLM = _fake_vllm(monkeypatch, tok, calls)
    probs = [Problem("a", "What is 1+2?", "3"), Problem("b", "What is 2+2?", "4")]
    df = sample(LLM("some/model"), None, probs, task, num_generations=3, max_new_tokens=12, batch_size=4,
                backend="vllm", progress=False, top_k=None)
    assert len(df) == 6 and set(df["backend"]) == {"vllm"}
    first_prompts, first_params = calls[0]
    assert [p.n for p in first_params] == [3, 1] and first_params[0].top_k == -1
    assert first_params[0].temperature == 0.6 and first_params[0].max_tokens == 12
    stop = df[df.finish_reason == "stop"]
    assert (stop["extracted_answer"] == "3").all() and (stop["answer_tokens"] > 0).all()
    assert df.loc[df.problem_id == "a"].query("finish_reason == 'stop'")["correct"].eq(1.0).all()
    assert df.loc[df.finish_reason == "length", "is_truncated"].all()


def test_a_vllm_resume_refuses_a_model_folder_whose_weights_were_swapped(monkeypatch, tok, task, tmp_path):
    """vLLM reads files, not tensors: the fingerprint is of the weight files the engine loaded."""
    from safetensors.torch import save_file

    from qwqlab.rollouts import files_fingerprint

    LLM = _fake_vllm(monkeypatch, tok, [])
    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "qwen2"}')
    save_file({"w": torch.arange(4096, dtype=torch.float32)}, folder / "model.safetensors")
    probs, out = [Problem("a", "What is 1+2?", "3")], tmp_path / "run.jsonl"
    first = sample(LLM(str(folder)), None, probs, task, num_generations=2, max_new_tokens=8, backend="vllm",
                   progress=False, out=out)
    assert first["weights_fingerprint"].iloc[0] == files_fingerprint(folder) is not None
    again = sample(LLM(str(folder)), None, probs, task, num_generations=2, max_new_tokens=8, backend="vllm",
                   progress=False, out=out, resume=True)  # the same files: resumes
    assert len(again) == 2
    trained = torch.arange(4096, dtype=torch.float32)
    trained[2000] += 1.0  # one weight moved, same names, shapes and file size
    save_file({"w": trained}, folder / "model.safetensors")
    before = out.read_bytes()
    with pytest.raises(ResumeError, match="other weights"):
        sample(LLM(str(folder)), None, probs, task, num_generations=2, max_new_tokens=8, backend="vllm",
               progress=False, out=out, resume=True)
    assert out.read_bytes() == before
    assert files_fingerprint("no-such-org/no-such-model") is None  # not local: only the name can be checked


def test_vllm_missing_is_a_clear_error(monkeypatch, tok, problems):
    monkeypatch.setitem(sys.modules, "vllm", None)   # import vllm -> ImportError
    with pytest.raises(ImportError, match="pip install 'qwqlab\\[vllm\\]'"):
        sample("Qwen/QwQ-32B", tok, problems, backend="vllm")


def test_vllm_on_a_gpu(tok):
    pytest.importorskip("vllm", reason="vLLM is not installed (it needs a CUDA machine)")
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA GPU; none here")
    from qwqlab.tasks import ArithmeticTask as T

    t = T()
    df = sample(str(NANO.parent), None, t.problems(4), t, num_generations=4, max_new_tokens=64,
                backend="vllm", progress=False)
    assert len(df) == 16 and set(df["finish_reason"]) <= {"stop", "length"}


# ----------------------------------------------------------------------------- qwq-nano (conftest's `nano`)

@pytest.fixture
def nano1(nano):
    torch.set_num_threads(1)  # conftest's `nano` asks for 2; correctness tests need no speed
    return nano


@needs_nano
def test_qwq_nano_rollouts_have_the_expected_shape(nano1, task):
    model, tok = nano1
    probs = task.problems(6)
    df = sample(model, tok, probs, task, num_generations=4, max_new_tokens=96, batch_size=24, progress=False)
    assert len(df) == 24 and set(df["model"]) == {"qwq-nano"}
    assert df["correct"].isin([0.0, 1.0]).all()
    # qwq-nano answers like QwQ: most completions close the thinking and box an answer
    assert (df["completion"].str.contains("</think>")).mean() > 0.5
    assert df["extracted_answer"].notna().mean() > 0.5
    closed = df[df.completion.str.count("</think>") == 1]
    # the one counter (chat.think_answer_tokens): the tokens of the thinking and of the answer text
    # (the tags, and the whitespace around them, count in neither)
    from qwqlab.chat import think_answer_tokens
    think, answer = think_answer_tokens(closed.completion, tok)
    assert (closed.think_tokens == think).all() and (closed.answer_tokens == answer).all()
    assert (closed.think_tokens + closed.answer_tokens + 1 + (~closed.is_truncated) <= closed.completion_tokens).all()
    again = sample(model, tok, probs, task, num_generations=4, max_new_tokens=96, batch_size=7, progress=False)
    pd.testing.assert_frame_equal(df, again)   # deterministic on CPU, whatever the batch size
    own = model.generation_config.max_new_tokens
    if own:  # max_new_tokens=None: the checkpoint's own default
        assert sample(model, tok, probs[:1], task, num_generations=1, progress=False)["max_new_tokens"][0] == own


@needs_nano
def test_qwq_nano_truncates_more_when_max_new_tokens_shrinks(nano1, task):
    model, tok = nano1
    probs = task.problems(6)
    rates = [sample(model, tok, probs, task, num_generations=4, max_new_tokens=m, batch_size=24,
                    progress=False)["is_truncated"].mean() for m in (8, 96)]
    assert rates[0] == 1.0 or rates[0] > rates[1]


def test_benchmark_has_a_help():
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_sampling.py"), "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "tokens/s" in r.stdout


# ----------------------------------------------------------------------------- resume probes (issue 10)

def test_resume_refuses_same_ids_with_other_questions_gold_or_weights(model, tok, problems, task, tmp_path):
    """Rows were keyed on (problem_id, sample_index) only: other problems under the same ids came back silently."""
    import copy

    from qwqlab.rollouts import ResumeError
    from qwqlab.tasks.base import Problem
    out = tmp_path / "r.jsonl"
    sample(model, tok, problems[:2], task, out=out, **SMALL)
    before = out.read_bytes()
    other_question = [Problem(p.id, p.question + " (changed)", p.answer) for p in problems[:2]]
    with pytest.raises(ResumeError, match="another question"):
        sample(model, tok, other_question, task, out=out, resume=True, **SMALL)
    other_gold = [Problem(p.id, p.question, str(int(p.answer) + 1)) for p in problems[:2]]
    with pytest.raises(ResumeError, match="another gold_answer"):
        sample(model, tok, other_gold, task, out=out, resume=True, **SMALL)
    moved = copy.deepcopy(model)
    with torch.no_grad():
        next(moved.parameters()).add_(0.01)  # the same model name, other weights
    with pytest.raises(ResumeError, match="written by other weights"):
        sample(moved, tok, problems[:2], task, out=out, resume=True, **SMALL)
    assert out.read_bytes() == before


def test_a_torn_file_that_is_refused_is_left_byte_identical(model, tok, problems, task, tmp_path):
    """The torn last line used to be repaired before the settings check: a file 'left untouched' changed."""
    from qwqlab.rollouts import ResumeError
    out = tmp_path / "r.jsonl"
    sample(model, tok, problems[:2], task, out=out, **SMALL)
    out.write_bytes(out.read_bytes() + b'{"problem_id": "x", "sam')
    before = out.read_bytes()
    with pytest.raises(ResumeError, match="seed"):
        sample(model, tok, problems[:2], task, out=out, resume=True, **{**SMALL, "seed": 99})
    assert out.read_bytes() == before and not list(tmp_path.glob("*.torn-*"))


def test_a_second_handle_on_one_file_is_refused(model, tok, problems, task, tmp_path):
    """Two processes resuming one file wrote 12 duplicates; the lock makes the second stop with a message."""
    from qwqlab.rollouts import ResumeError, RolloutStore
    out = tmp_path / "r.jsonl"
    held = RolloutStore(out)  # another process's sample() holds it (flock is per open file)
    held.lock()
    try:
        with pytest.raises(ResumeError, match="being written by another process"):
            sample(model, tok, problems[:2], task, out=out, **SMALL)
    finally:
        held.unlock()
    df = sample(model, tok, problems[:2], task, out=out, **SMALL)  # free again
    assert len(df) == len(pd.read_json(out, lines=True))
