"""Notebook 01 runs headless on qwq-nano, writes its figures, and its widgets respond."""
import json

import pytest

from executed import keep

from qwqlab.figures import NOTEBOOK_DIR, execute_notebook, page_problems

NOTEBOOK = NOTEBOOK_DIR / "01_models_and_quantization.ipynb"


@pytest.mark.slow
def test_notebook_01_runs_and_writes_its_figures(tmp_path):
    nb = execute_notebook(NOTEBOOK, {"NUM_DRIFT_PROBLEMS": 8}, out_dir=tmp_path)  # 8: small for speed
    assert page_problems(nb) == []  # a clean page: no stderr, warnings, doubled images, stray values
    keep(NOTEBOOK, nb)  # the book's test builds its page from this run
    entries = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [e["name"] for e in entries] == ["nano_footprints", "memory_by_model"]
    for e in entries:
        assert e["data_sha256"] and all((tmp_path / f).stat().st_size > 1000 for f in e["files"])
    text = "\n".join(o.get("text", "") + json.dumps(o.get("data", {})) for c in nb.cells if c.cell_type == "code"
                     for o in c.get("outputs", []))
    assert "Linear4bit" in text and "Linear8bitLt" in text
    assert "kl_nats_per_token" in text
    assert "skipping the GPU model" in text  # no GPU here: says so instead of failing


def test_chat_widget_shows_thinking_and_answer_apart(nano):
    from qwqlab.widgets import chat_widget
    model, tok = nano
    w = chat_widget(model, tok, question="What is 478+396?")
    w.controls["temperature"].value = 0.0  # greedy: qwq-nano reasons fully when greedy
    w.controls["generate"].click()
    assert "8+6+0=14" in w.panels["thinking"].value
    assert "\\boxed{874}" in w.panels["answer"].value and "finished by stop" in w.panels["status"].value
    assert "correct" in w.panels["verdict"].value          # graded by the task, as in training
    w.controls["prompt"].value = "What is 12+30?"
    w.controls["generate"].click()
    verdict = w.panels["verdict"].value
    assert "correct" in verdict or "the right answer is <b>42</b>" in verdict
    w.controls["prompt"].value = "Name a colour."
    w.controls["generate"].click()
    assert "no verdict" in w.panels["verdict"].value


def test_memory_explorer_slider_updates_the_table():
    from qwqlab.widgets import memory_explorer
    w = memory_explorer(names=["Qwen/QwQ-32B"], bits=(4,), context_tokens=4096)
    before = w.table["kv_cache_gib"].iloc[0]
    w.controls["context"].value = 8192
    assert w.table["kv_cache_gib"].iloc[0] == pytest.approx(2 * before, rel=1e-3)
    assert "8,192 tokens" in w.figure.layout.title.text


def test_compare_footprints_and_logit_drift(nano):
    from qwqlab.models import compare_footprints, load_model, logit_drift
    model, tok = nano
    q4, _ = load_model("qwq-nano", bits=4, verbose=False)
    table = compare_footprints({32: model, 4: q4})
    assert list(table["bits"]) == [32, 4] and (table["error_pct"].abs() < 5).all()
    ids = tok(["What is 12+34?"], return_tensors="pt")
    drift = logit_drift(model, {"self": model, "4-bit": q4}, ids["input_ids"], ids["attention_mask"])
    self_row, q_row = drift.iloc[0], drift.iloc[1]
    assert self_row["kl_nats_per_token"] == pytest.approx(0, abs=1e-6) and self_row["top1_agreement"] == 1
    assert q_row["kl_nats_per_token"] > 0
