"""What each explorer is made to do in the browser, and what must change when it is.

Each ``exercise_*(page, reader)`` moves a control of one ``qwqlab.widgets`` explorer the way
a person would (keyboard or mouse), asserts that what the control drives changed (a table
cell, a plotly figure's data, a matplotlib image), scrolls the explorer into view for the
screenshot, and returns one line saying what happened. The same functions test a notebook
in JupyterLab and its dashboard in Voila.
"""
from __future__ import annotations

import re

from browser_harness import move_slider, wait_for_change


def _in_view(page, box: str) -> None:
    page.locator(box).first.scroll_into_view_if_needed()


def exercise_memory(page, reader) -> str:
    """Context slider one step right (+1024 tokens): the table and the figure follow."""
    box = ".qwqlab-memory"
    page.locator(box).first.wait_for()
    read = lambda: reader.snapshot(box)  # noqa: E731
    before = read()
    # QwQ-32B's KV cache is 256 KiB per token in bf16: 32768 tokens -> 8.0 GiB, 33792 -> 8.25 GiB.
    assert re.search(r"\b8\.0+\b", before["text"]), before["text"][:500]
    move_slider(page, page.locator(f"{box} .noUi-handle").first, "ArrowRight")
    after = wait_for_change(read, before, keys=("text", "plots"), require="all")
    assert page.locator(f"{box} .widget-readout").first.inner_text().replace(",", "") == "33792"
    assert re.search(r"\b8\.250*\b", after["text"]), f"table did not update: {after['text'][:500]}"
    assert after["plots"] != before["plots"], "the memory figure did not change"
    _in_view(page, box)
    return "context slider 32768 -> 33792: QwQ-32B KV cache 8.0 -> 8.25 GiB in the table, figure redrawn"


CHAT_OUTPUT_JS = """
(box) => {
  const root = document.querySelector(box);
  const thinking = root.querySelectorAll('textarea')[1];
  const html = Array.from(root.querySelectorAll('.widget-html-content, .widget-htmlmath-content')).map(e => e.innerText).join('\\n');
  return (thinking ? thinking.value : '') + '\\n' + html;
}
"""


def exercise_chat(page, reader) -> str:
    """Type a new question, press Generate at temperature 0: the thinking and answer change."""
    box = ".qwqlab-chat"
    page.locator(box).first.wait_for()
    before = page.evaluate(CHAT_OUTPUT_JS, box)
    assert "Boxed:" in before, f"the chat widget shows no first answer: {before[:300]}"
    move_slider(page, page.locator(f"{box} .noUi-handle").first, "ArrowLeft", presses=12)  # 0.6 -> 0.0: greedy
    prompt = page.locator(f"{box} textarea").first
    prompt.fill("What is 123+456?")
    prompt.press("Tab")  # a Textarea sends its value on change
    page.locator(f"{box} button", has_text="Generate").click()
    # The widget fills the thinking, then the answer, then the status line: wait until all settle.
    read = lambda: {"text": page.evaluate(CHAT_OUTPUT_JS, box)}  # noqa: E731
    after = wait_for_change(read, {"text": before}, keys=("text",), timeout=60)["text"]
    assert after != before, "Generate changed nothing"
    temperature = page.locator(f"{box} .widget-readout").first.inner_text()
    _in_view(page, box)
    answer = after.split("Answer:")[-1].strip().splitlines()[0][:60]
    return f"asked 123+456 at temperature {temperature}: new completion, answer {answer!r}"


def exercise_lengths(page, reader) -> str:
    """Buckets slider one step right: the accuracy-by-length figure is redrawn; then a correctness filter."""
    box = ".qwqlab-lengths"
    page.locator(box).first.wait_for()
    read = lambda: reader.snapshot(box)  # noqa: E731
    before = read()
    readout = page.locator(f"{box} .widget-readout").first
    value = readout.inner_text()
    move_slider(page, page.locator(f"{box} .noUi-handle").first, "ArrowRight")
    after = wait_for_change(read, before, keys=("images",))
    assert readout.inner_text() != value and after["images"] != before["images"], "figures did not change"
    before = after
    # Filter to one kind of completion; a model that is always right (or always wrong) shows
    # the same completions under one of the two filters, so try the other one too.
    for which in ("correct", "incorrect"):
        page.locator(f"{box} button", has_text=which).first.click()
        after = wait_for_change(read, before, keys=("text", "images"), timeout=10)
        if after != before:
            break
    assert after != before, "nothing changed when filtering to correct or incorrect completions"
    _in_view(page, box)
    changed = " and ".join(k for k in ("text", "images") if after[k] != before[k])
    return f"buckets {value} -> {readout.inner_text()}: figures redrawn; {which!r} filter: {changed} changed"


def exercise_benchmarks(page, reader) -> str:
    """Another scatter benchmark picked, then one benchmark clicked: figures and table follow."""
    box = ".qwqlab-benchmarks"
    page.locator(box).first.wait_for()
    read = lambda: reader.snapshot(box)  # noqa: E731
    before = read()
    dropdown = page.locator(f"{box} .widget-dropdown select").first
    old = dropdown.input_value()
    options = dropdown.locator("option").all_inner_texts()
    new = next(o for o in options if o != old)
    dropdown.select_option(label=new)  # what picking it with the mouse does
    after = wait_for_change(read, before, keys=("images",))
    assert dropdown.input_value() == new, f"dropdown still shows {dropdown.input_value()!r}"
    assert after["images"] != before["images"], f"scatter not redrawn for {new}"
    before = after
    benchmarks = page.locator(f"{box} .widget-select-multiple select").first
    options = benchmarks.locator("option")
    first, second = options.nth(0).inner_text(), options.nth(1).inner_text()
    # whole names: "AIME" (QwQ-32B-Preview's blog) is part of "AIME24"
    named = lambda name, text: re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None  # noqa: E731
    assert named(second, before["text"]), f"{second} not in the table before"
    options.first.click()  # a plain click selects that one benchmark only
    after = wait_for_change(read, before, keys=("text", "images"), require="all")
    assert named(first, after["text"]) and not named(second, after["text"]), f"table still shows {second}"
    _in_view(page, box)
    return f"scatter {old} -> {new}: redrawn; only {first} picked: {second} left the table, bars redrawn"


def exercise_reward(page, reader) -> str:
    """Notebook 03's reward explorer: the format weight one step up, then Dr. GRPO advantages."""
    box = ".qwqlab-reward-explorer"
    page.locator(box).first.wait_for()
    read = lambda: reader.snapshot(box)  # noqa: E731
    before = read()
    slider = page.locator(f"{box} .widget-slider", has_text="format").first
    value = slider.locator(".widget-readout").inner_text()
    move_slider(page, slider.locator(".noUi-handle"), "ArrowRight")
    after = wait_for_change(read, before, keys=("text",))
    new_value = slider.locator(".widget-readout").inner_text()
    assert new_value != value, "the format weight did not move"
    assert f"{float(new_value):g}*format" in after["text"], f"reward formula not updated: {after['text'][:300]}"
    before = after
    estimator = page.locator(f"{box} .widget-dropdown select").first
    estimator.select_option(label="dr_grpo")  # what picking it with the mouse does
    after = wait_for_change(read, before, keys=("text",))
    assert "advantages (dr_grpo)" in after["text"], f"advantages not recomputed: {after['text'][:300]}"
    _in_view(page, box)
    return f"format weight {value} -> {new_value}: reward formula and table recomputed; dr_grpo advantages shown"


def exercise_resample(page, reader) -> str:
    """Notebook 02's resampler: temperature one step right resamples; the spread figure is redrawn."""
    box = ".qwqlab-resample"
    page.locator(box).first.wait_for()
    read = lambda: reader.snapshot(box)  # noqa: E731
    before = read()
    readout = page.locator(f"{box} .widget-readout").first
    value = readout.inner_text()
    move_slider(page, page.locator(f"{box} .noUi-handle").first, "ArrowRight")
    after = wait_for_change(read, before, keys=("images",))
    assert readout.inner_text() != value, "the temperature slider did not move"
    assert after["images"] != before["images"], "the answer-spread figure was not redrawn"
    return f"resampler temperature {value} -> {readout.inner_text()}: samples redrawn"


def exercise_rollouts(page, reader) -> str:
    """The rollout browser: the sample slider one step right shows another sample."""
    box = ".qwqlab-rollout-browser"
    page.locator(box).first.wait_for()
    read = lambda: reader.snapshot(box)  # noqa: E731
    before = read()
    assert "sample 0:" in before["text"], before["text"][:300]
    move_slider(page, page.locator(f"{box} .noUi-handle").first, "ArrowRight")
    after = wait_for_change(read, before, keys=("text",))
    assert "sample 1:" in after["text"], f"still showing: {after['text'][:300]}"
    _in_view(page, box)
    return "rollout browser sample 0 -> 1: thinking, answer and token counts of sample 1 shown"


def exercise_rollout_sampling(page, reader) -> str:
    """Notebook 02: the resampler, then the rollout browser."""
    return exercise_resample(page, reader) + "; " + exercise_rollouts(page, reader)


def exercise_training_monitor(page, reader) -> str:
    """Notebook 04's live monitor has no control to move: check it followed the run to its end."""
    box = ".qwqlab-training-monitor"
    page.locator(box).first.wait_for()
    text = page.locator(box).first.inner_text()
    step = re.search(r"step (\d+): reward", text)
    assert step, f"the monitor shows no step: {text[:300]}"
    assert reader.snapshot(box)["images"], "the monitor drew no plot"
    _in_view(page, box)
    return f"live training monitor (no control to move) followed the run to step {step.group(1)}, plots drawn"


def exercise_any_slider(page, reader, max_sliders: int = 8) -> str:
    """Move each slider in turn (right, or left at its maximum) until something it drives changes."""
    handles = page.locator(".jp-OutputArea-output .noUi-handle")
    count = handles.count()
    assert count, "no slider in this notebook's outputs: add an exercise for it in tests/browser/exercises.py"
    for i in range(min(count, max_sliders)):
        handle = handles.nth(i)
        readout = page.locator(".jp-OutputArea-output .widget-slider .widget-readout").nth(i)
        before, value = reader.snapshot(), readout.inner_text()
        move_slider(page, handle, "ArrowRight")
        if readout.inner_text() == value:  # already at its maximum
            move_slider(page, handle, "ArrowLeft")
        after = wait_for_change(reader.snapshot, before, timeout=8)
        changed = [k for k in ("text", "plots", "images") if after[k] != before[k]]
        if changed:
            handle.scroll_into_view_if_needed()
            return f"slider {i} {value} -> {readout.inner_text()} changed {', '.join(changed)}"
    raise AssertionError(f"none of {min(count, max_sliders)} sliders changed any output")


#: Each pane's scrollWidth and clientWidth, and the three elements reaching furthest past its right edge.
WIDEST_JS = """
els => els.map(e => {
  const right = e.getBoundingClientRect().right;
  const over = [...e.querySelectorAll('*')].map(d => [d.getBoundingClientRect().right - right,
      d.tagName.toLowerCase() + '.' + (d.className && d.className.baseVal === undefined ? d.className : '')])
    .filter(x => x[0] > 1).sort((a, b) => b[0] - a[0]).slice(0, 3);
  return [e.scrollWidth, e.clientWidth, over];
})
"""


def exercise_trace_reader(page, reader) -> str:
    """Another problem picked: both panes show it; the thinking unfolds with markers highlighted."""
    box = ".qwqlab-trace-reader"
    page.locator(box).first.scroll_into_view_if_needed()
    read = lambda: reader.snapshot(box)  # noqa: E731
    before = read()
    assert "QwQ-32B" in before["text"] and "DeepSeek-R1" in before["text"], before["text"][:300]
    problem = page.locator(f"{box} .widget-dropdown select").first
    old = problem.input_value()
    options = problem.locator("option").all_inner_texts()
    problem.select_option(label=options[3])
    after = wait_for_change(read, before, keys=("text",))
    assert problem.input_value() != old and after["text"] != before["text"], "the panes did not change"
    summary = page.locator(f"{box} details summary").first
    summary.click()
    marks = page.locator(f"{box} details[open] mark")
    marks.first.wait_for(timeout=10_000)
    count = marks.count()
    assert count > 0, "no reflection marker highlighted in the unfolded thinking"
    _in_view(page, box)
    # Neither pane scrolls sideways: a wide display equation once made the left one twice its width.
    for problem_label in (options[3], options[0], options[-1]):
        problem.select_option(label=problem_label)
        page.wait_for_timeout(1500)  # MathJax typesets after the value arrives
        widths = page.eval_on_selector_all(f"{box} .widget-htmlmath", WIDEST_JS)
        assert len(widths) == 2 and all(scroll <= client + 1 for scroll, client, _ in widths), (
            f"a trace pane is wider than it shows (scrollWidth, clientWidth, widest pieces): {widths} "
            f"for {problem_label[:40]!r}")
    problem.select_option(label=options[3])  # the screenshot shows the reader with its two panes
    page.wait_for_timeout(1500)
    page.locator(f"{box} .widget-htmlmath").first.evaluate("e => e.scrollIntoView({block: 'start'})")
    return f"problem {options[3][:30]!r}: both panes redrawn; thinking unfolded with {count} markers highlighted"


def exercise_lengths_and_traces(page, reader) -> str:
    """Notebook 05: qwq-nano's length explorer, then the side-by-side reader of QwQ-32B's traces."""
    return exercise_lengths(page, reader) + "; " + exercise_trace_reader(page, reader)
