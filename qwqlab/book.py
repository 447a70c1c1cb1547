"""``make book``: the executed notebooks as a static HTML site students can read after class.

Built with nbconvert (Jupyter's own converter, the one ``jupyter nbconvert --to html`` runs)
plus a small index, rather than Jupyter Book: nbconvert is already installed with the lab, so
the book needs no new dependency, no second notebook executor (it converts the notebooks that
``qwqlab figures`` executed) and no network; the pages are plain files that open from
``file://`` or any static host. Each chapter page is JupyterLab's own rendering (nbconvert's
``lab`` template) with three changes for offline reading: no script is fetched from a CDN
(require.js and MathJax are left out); the markdown's formulas are converted to MathML at build
time (``latex2mathml``; browsers draw MathML without a script, so maths reads offline); and
interactive widgets, which need a running kernel, are replaced by a line saying which dashboard
serves them.

``build_book(executed, out)`` writes ``index.html`` (chapters, figures), one page per
notebook, ``glossary.html`` and ``exercises.html``. Solutions stay folded (``<details>``).
"""
from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

#: The glossary of the package, the notebooks and the data columns (CONTRIBUTING.md's list).
GLOSSARY = {
    "problem_id": "The id of a problem; every sample of one problem shares it.",
    "sample_index": "Which of a problem's k samples a row is (0 to k-1).",
    "prompt": "The text given to the model: the question in QwQ's chat format, ending with <think>.",
    "completion": "What the model wrote after the prompt: thinking, </think>, then the answer.",
    "thinking": "The part of a completion before </think>: the model's reasoning.",
    "answer_text": "The part of a completion after </think>, where the \\boxed{} answer is.",
    "extracted_answer": "The answer read out of the last \\boxed{} (None when there is none).",
    "completion_tokens": "Tokens in the completion (thinking plus answer).",
    "think_tokens": "Tokens in the thinking.",
    "answer_tokens": "Tokens after </think>.",
    "finish_reason": "Why sampling stopped: 'stop' (the model ended) or 'length' (max_new_tokens reached).",
    "is_truncated": "The completion was cut at max_new_tokens before it finished.",
    "correct": "1.0 if the extracted answer equals the gold answer (Math-Verify), 0.0 if not, None if it cannot be judged.",
    "num_generations": "k: how many completions are sampled per prompt (a GRPO group).",
    "max_new_tokens": "The token budget of one completion.",
    "pass@k": "The chance that at least one of k samples is right (Chen et al. 2021's unbiased estimator).",
    "maj@k": "Accuracy of the most frequent answer among k samples (majority vote).",
    "avg@k": "The mean accuracy over k samples: QwQ's reported metric (pass@1 averaged over 64 samples).",
    "advantage": "How much better a completion scored than its group: (reward - group mean) / group std in GRPO.",
    "GRPO": "Group Relative Policy Optimization (Shao et al. 2024): PPO's clipped loss with advantages from a group of samples instead of a value model.",
    "Dr. GRPO": "GRPO without the division by the group's std and by each completion's length (Liu et al. 2025).",
    "KL penalty": "A term keeping the policy near a reference model; GRPO estimates it per token with k3 = exp(r) - 1 - r.",
    "clip-higher": "DAPO's wider upper clip bound (1 + 0.28 instead of 1 + 0.2), which keeps exploration alive.",
    "reward hacking": "A policy raising its reward without doing the task (e.g. perfect format, wrong answers).",
    "NF4": "4-bit NormalFloat: 16 levels spaced like a normal distribution, one scale per block of 64 weights (QLoRA).",
    "LLM.int8": "8-bit weights with one absmax scale per row, outlier features kept in 16 bits (Dettmers et al. 2022).",
    "KV cache": "The keys and values of every past token, kept so each new token costs one step; grows with the context.",
    "reflection marker": "A word such as 'wait' or 'alternatively' where a model revisits its reasoning; counted per 1,000 thinking tokens.",
    "overthinking": "Thinking on after the first correct answer appeared in the thinking.",
}

_WIDGET = "application/vnd.jupyter.widget-view+json"
_CSS = """body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.5}
nav.qwqlab-nav{margin:0 0 1em;padding:.4em 0;border-bottom:1px solid #ddd}nav.qwqlab-nav a{margin-right:1em}
dt{font-weight:bold;margin-top:.6em}code{background:#f4f4f4;padding:0 .2em}img{max-width:100%}
math{font-size:1.15em}"""
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
"""


def _title(nb) -> str:
    first = nb.cells[0].source.splitlines()[0] if nb.cells else ""
    return first.lstrip("# ").strip()


def _nav(pages: list[tuple[str, str]], i: int | None) -> str:
    links = ['<a href="index.html">Index</a>']
    if i is not None and i > 0:
        links.append(f'<a href="{pages[i - 1][0]}">&larr; {html.escape(pages[i - 1][1])}</a>')
    if i is not None and i + 1 < len(pages):
        links.append(f'<a href="{pages[i + 1][0]}">{html.escape(pages[i + 1][1])} &rarr;</a>')
    links += ['<a href="exercises.html">Exercises</a>', '<a href="glossary.html">Glossary</a>']
    return f'<nav class="qwqlab-nav">{" &nbsp;·&nbsp; ".join(links)}</nav>'


_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
_MARKDOWN_SPECIAL = str.maketrans({c: f"&#{ord(c)};" for c in "|*_\\`$~[]"})


def markdown_mathml(markdown: str) -> str:
    """Markdown with its formulas (``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]``, found by
    ``widgets.base.math_segments``) as MathML; code spans and blocks are left alone, and so is a
    formula ``latex2mathml`` cannot convert. Characters markdown would read (``|`` in a table,
    ``*``, ``_``) are written as entities inside the MathML.

    >>> markdown_mathml("a $x_i$ in `$HOME`")[:42]
    'a <math xmlns="http://www.w3.org/1998/Math'
    """
    try:
        from latex2mathml.converter import convert
    except ImportError:  # an install without it: formulas stay LaTeX source
        return markdown
    from qwqlab.widgets.base import math_segments

    def maths(text: str) -> str:
        out, last = [], 0
        for start, end in math_segments(text):
            piece = text[start:end]
            block = piece.startswith(("$$", "\\["))
            tex = piece[2:-2] if piece.startswith(("$$", "\\[", "\\(")) else piece[1:-1]
            try:
                converted = convert(tex.strip(), display="block" if block else "inline")
            except Exception:  # noqa: BLE001 - a formula it cannot read stays LaTeX
                converted = piece
            else:
                converted = re.sub(r">([^<]+)<", lambda m: ">" + m.group(1).translate(_MARKDOWN_SPECIAL) + "<",
                                   converted.replace("\n", ""))
            out += [text[last:start], converted]
            last = end
        return "".join(out) + text[last:]

    out, last = [], 0
    for code in _CODE.finditer(markdown):
        out += [maths(markdown[last:code.start()]), code.group(0)]
        last = code.end()
    return "".join(out) + maths(markdown[last:])


def prepare_for_book(nb, nav: str = ""):
    """The notebook as a reader sees it: no set-up or injected cells, widgets described, solutions
    folded, and the code cells that remain numbered from 1 without gaps."""
    import nbformat

    cells = []
    if nav:
        cells.append(nbformat.v4.new_markdown_cell(nav))
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "qwqlab-setup" in tags or "injected-parameters" in tags:
            continue
        if cell.cell_type == "markdown":
            cell.source = markdown_mathml(cell.source)
        if "solution" in tags:
            code = html.escape(cell.source)
            cells.append(nbformat.v4.new_markdown_cell(
                f'<details class="qwqlab-solution"><summary>Show solution</summary><pre><code>{code}'
                "</code></pre></details>"))
            continue
        if cell.cell_type == "code":
            if "exercise" in tags:
                cell.outputs = []
            outputs = []
            for out in cell.get("outputs", []):
                data = out.get("data", {})
                if _WIDGET in data:
                    if re.search(r"\d+%\|", str(data.get("text/plain", ""))):
                        continue  # a progress bar (tqdm's "42%|####"): nothing to read after the run
                    outputs.append(nbformat.v4.new_output("display_data", data={
                        "text/html": "<p><i>An interactive widget: run this notebook in JupyterLab "
                                     "(<code>make lab</code>) or serve it with <code>qwqlab dashboard</code> "
                                     "to use it.</i></p>"}))
                    continue
                outputs.append(out)
            cell.outputs = outputs
        cells.append(cell)
    # the cells left are numbered 1, 2, 3 ...: a page that starts at In [2] and skips numbers
    # (where set-up and solution cells were) reads as if something is missing
    count = 0
    for cell in cells:
        if cell.cell_type == "code" and cell.get("execution_count") is not None:
            count += 1
            cell.execution_count = count
            for out in cell.get("outputs", []):
                if out.get("output_type") == "execute_result":
                    out["execution_count"] = count
    nb.cells = cells
    nb.metadata.pop("widgets", None)
    return nb


def _page(title: str, body: str, nav: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{nav}<h1>{html.escape(title)}</h1>{body}</body></html>")


def _exercises(nb, page: str) -> list[tuple[str, str, str]]:
    """``[(title, question html, link)]`` of a notebook's Exercises section."""
    from nbconvert.filters.markdown import markdown2html
    from nbconvert.filters.strings import _convert_header_id

    out = []
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("### Exercise"):
            head, _, question = cell.source.partition("\n")
            title = head.lstrip("# ").strip()
            anchor = _convert_header_id(title)  # the id nbconvert gives the heading
            out.append((title, markdown2html(question.strip()), f"{page}#{anchor}"))
    return out


def build_book(executed: str | Path, out: str | Path, figures: str | Path | None = None) -> list[Path]:
    """Write the book into ``out`` from the executed notebooks in ``executed`` (``NN_*.ipynb``, searched
    recursively, as ``qwqlab figures`` leaves them); returns the pages written.

    ``figures`` (a ``qwqlab figures`` folder) adds each notebook's figure files, linked from the index.
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    executed, out = Path(executed), Path(out)
    sources = sorted({p.name: p for p in executed.rglob("[0-9][0-9]_*.ipynb")}.values(), key=lambda p: p.name)
    if not sources:
        raise FileNotFoundError(f"{executed}: no executed notebooks (NN_name.ipynb) in it; run "
                                "`qwqlab figures --out DIR` (or `make book`) first")
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab", template_file="qwqlab_book.html.j2",
                            extra_loaders=[jinja2.DictLoader({"qwqlab_book.html.j2": _TEMPLATE})])
    notebooks = [(p, nbformat.read(p, as_version=4)) for p in sources]
    pages = [(f"{p.stem}.html", _title(nb)) for p, nb in notebooks]
    written, chapters, exercises = [], [], []
    for i, (path, nb) in enumerate(notebooks):
        exercises += [(pages[i][1], *e) for e in _exercises(nb, pages[i][0])]
        intro = next((c.source for c in nb.cells[1:3] if c.cell_type == "markdown"), "")
        chapters.append((pages[i], intro.split("\n\n")[0]))
        body, _ = exporter.from_notebook_node(prepare_for_book(nb, _nav(pages, i)),
                                              resources={"metadata": {"name": pages[i][1]}})
        (out / pages[i][0]).write_text(body)
        written.append(out / pages[i][0])
    from nbconvert.filters.markdown import markdown2html

    items = []
    for (page, title), intro in chapters:
        figs = ""
        stem = page[:-5]
        if figures is not None and (Path(figures) / stem).is_dir():
            shutil.copytree(Path(figures) / stem, out / "figures" / stem, dirs_exist_ok=True)
            names = sorted(f.stem for f in (out / "figures" / stem).glob("*.png"))
            figs = "<p>Figures: " + ", ".join(
                f'<a href="figures/{stem}/{n}.png">{html.escape(n)}</a>'
                + (f' (<a href="figures/{stem}/{n}.html">interactive</a>)'
                   if (out / "figures" / stem / f"{n}.html").exists() else "") for n in names) + "</p>"
        items.append(f'<li><h2><a href="{page}">{html.escape(title)}</a></h2>{markdown2html(intro)}{figs}</li>')
    index = ("<p>The six notebooks of qwqlab, executed on the bundled qwq-nano, with their figures. Each "
             "ends with exercises; the solutions are folded. To run them yourself: <code>make lab</code>.</p>"
             f"<ol>{''.join(items)}</ol>"
             '<p><a href="exercises.html">All exercises</a> · <a href="glossary.html">Glossary</a></p>')
    (out / "index.html").write_text(_page("qwqlab: a lab for RL-trained reasoning models", index, _nav(pages, None)))
    gloss = "<dl>" + "".join(f"<dt id='{re.sub(r'[^A-Za-z0-9]+', '-', k)}'>{html.escape(k)}</dt>"
                             f"<dd>{html.escape(v)}</dd>" for k, v in GLOSSARY.items()) + "</dl>"
    (out / "glossary.html").write_text(_page("Glossary", gloss, _nav(pages, None)))
    ex = "".join(f'<h2>{html.escape(chapter)}: <a href="{html.escape(link, quote=True)}">{html.escape(title)}</a></h2>'
                 f"{question}"
                 for chapter, title, question, link in exercises)
    (out / "exercises.html").write_text(_page("Exercises", "<p>Each links to its notebook page, where the "
                                              "solution is folded under it.</p>" + ex, _nav(pages, None)))
    return [out / "index.html", *written, out / "glossary.html", out / "exercises.html"]
