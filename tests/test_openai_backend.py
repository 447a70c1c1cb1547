"""backend="openai" against a real OpenAI-compatible server: `transformers serve` with qwq-nano on 127.0.0.1.

The module starts the server once (about 20 s) and stops it at the end; the kill-and-resume
test kills it (SIGKILL) mid-run and starts it again. Everything else is tiny (a few arithmetic
problems, greedy, 96 new tokens at most) because each request is a real generation.

What transformers serve 5.24 does with a request (read in transformers/cli/serving): temperature
0 turns sampling off (greedy, `do_sample=False`); `seed` calls `torch.manual_seed` (process-wide);
`n` is ignored (one choice per response), so the backend asks again for the rest; `top_k` is not
an accepted field (422), so these tests send top_k=None.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import torch

from qwqlab.backends import ServerSettings, completion_text
from qwqlab.chat import split_think
from qwqlab.rollouts import sample
from qwqlab.tasks import ArithmeticTask

REPO = Path(__file__).resolve().parent.parent
NANO = REPO / "data" / "models" / "qwq-nano"
GREEDY = dict(temperature=0.0, top_k=None, max_new_tokens=96, progress=False)  # greedy: comparable across backends


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`transformers serve data/models/qwq-nano` on 127.0.0.1, started and stopped by the tests."""

    def __init__(self, log: Path):
        self.port, self.log, self.proc = _free_port(), log, None
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 180.0) -> None:
        exe = Path(sys.executable).parent / "transformers"
        cmd = [str(exe) if exe.exists() else shutil.which("transformers") or "transformers", "serve", str(NANO),
               "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "OMP_NUM_THREADS": "1",
               "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
        self.proc = subprocess.Popen(cmd, env=env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM killer would: no goodbye to the open connections."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("openai", reason="backend='openai' needs the openai client (the test extra installs it)")
    pytest.importorskip("fastapi", reason="transformers serve needs transformers[serving] (the test extra)")
    if not (NANO / "config.json").exists():
        pytest.skip("the bundled qwq-nano checkpoint is not in data/models")
    srv = Server(tmp_path_factory.mktemp("serve") / "serve.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def local(nano):
    torch.set_num_threads(1)
    return nano


@pytest.fixture(scope="module")
def task():
    return ArithmeticTask(split="test")


def _settings(srv, **kw):
    return ServerSettings(base_url=srv.base_url, api_key_env="QWQLAB_TEST_KEY", concurrency=2, max_retries=1,
                          timeout=60, **kw)


def test_completion_text_puts_the_thinking_back():
    assert completion_text("The answer is \\boxed{4}.", "2+2=4\n") == "2+2=4\n</think>\n\nThe answer is \\boxed{4}."
    assert completion_text("", "2+2=") == "2+2="          # cut inside the thinking: no answer made up
    assert completion_text("plain answer", None) == "plain answer"
    with pytest.raises(ValueError, match="endpoint"):
        ServerSettings(endpoint="responses")
    with pytest.raises(ValueError, match="never in a config"):
        ServerSettings(api_key_env="")


@pytest.mark.slow  # a real server: about 20 s to start
def test_completions_endpoint_gives_the_in_process_texts_at_temperature_0(server, local, task):
    model, tok = local
    problems = task.problems(4)
    ours = sample(model, tok, problems, task, num_generations=1, **GREEDY)
    theirs = sample(None, tok, problems, task, num_generations=1, backend="openai",
                    server=_settings(server, endpoint="completions"), **GREEDY)
    assert list(theirs["completion"]) == list(ours["completion"])        # the same greedy texts
    assert list(theirs["prompt"]) == list(ours["prompt"])
    for col in ("completion_tokens", "think_tokens", "answer_tokens", "finish_reason", "extracted_answer", "correct"):
        assert list(theirs[col]) == list(ours[col]), col                # usage counts the end-of-turn token too
    assert set(theirs["backend"]) == {"openai"} and set(theirs["model"]) == {"qwq-nano"}


@pytest.mark.slow  # a real server: about 20 s to start
def test_chat_endpoint_keeps_reasoning_content_as_thinking(server, local, task, monkeypatch):
    monkeypatch.setenv("QWQLAB_TEST_KEY", "sk-secret-not-logged")
    model, tok = local
    problems = task.problems(3)
    ours = sample(model, tok, problems, task, num_generations=1, **GREEDY)
    theirs = sample(None, tok, problems, task, num_generations=2, backend="openai",  # n=2 each, served one by one
                    server=_settings(server, endpoint="chat", samples_per_request=2), **GREEDY)
    assert len(theirs) == 6 and not theirs.duplicated(["problem_id", "sample_index"]).any()
    first = theirs[theirs["sample_index"] == 0].reset_index(drop=True)
    # transformers serve splits the thinking off as reasoning_content; the row keeps it verbatim
    assert [t.strip() for t in first["thinking"]] == [split_think(c).thinking for c in ours["completion"]]
    assert list(first["answer_text"]) == list(ours["answer_text"])
    assert list(first["correct"]) == list(ours["correct"]) and first["extracted_answer"].notna().all()
    assert list(first["completion_tokens"]) == list(ours["completion_tokens"])
    assert first["prompt"].str.contains('"role": "user"').all()     # the messages sent, not a template's text
    assert "sk-secret" not in theirs.to_json()
    cut = sample(None, tok, problems[:1], task, num_generations=1, backend="openai",
                 server=_settings(server, endpoint="chat"), **{**GREEDY, "max_new_tokens": 6})
    assert cut["is_truncated"].all() and cut["extracted_answer"].isna().all() and (cut["completion_tokens"] == 6).all()


@pytest.mark.slow  # a real server: about 20 s to start
def test_killed_server_then_resume_loses_and_duplicates_nothing(server, local, task, tmp_path):
    """Kill the server mid-run (SIGKILL), start it again, resume: every row once, the same as in-process."""
    model, tok = local
    problems = task.problems(10)
    out = tmp_path / "served.jsonl"
    run = dict(num_generations=2, batch_size=4, out=out, backend="openai",
               server=_settings(server, endpoint="completions"), **GREEDY)

    def kill_after_two_batches():
        deadline = time.time() + 120
        while time.time() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 8):
            time.sleep(0.05)
        server.kill()

    killer = threading.Thread(target=kill_after_two_batches)
    killer.start()
    import openai
    with pytest.raises(openai.APIConnectionError):  # the client's retries give up on a dead server
        sample(None, tok, problems, task, **run)
    killer.join()
    before = out.read_bytes().count(b"\n")
    assert 8 <= before < 20, before

    server.start()
    resumed = sample(None, tok, problems, task, resume=True, **run)
    on_disk = pd.read_json(out, lines=True)
    print(f"\n[openai kill/resume] rows when the server died: {before}; after resume: {len(on_disk)} (want 20)")
    assert len(on_disk) == len(resumed) == 20
    assert not on_disk.duplicated(["problem_id", "sample_index"]).any()
    reference = sample(model, tok, problems, task, num_generations=2, **GREEDY)
    assert list(resumed["completion"]) == list(reference["completion"])


class _Flaky(threading.Thread):
    """A stand-in server that answers 429, then 503, then a completion: the client's backoff must carry on."""

    def __init__(self, failures=(429, 503)):
        import http.server
        import json

        outer = self
        self.statuses, self.seen = list(failures), []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.seen.append(body)
                if outer.statuses:
                    self.send_response(outer.statuses.pop(0))
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                data = json.dumps({"id": "x", "object": "text_completion", "created": 0, "model": body["model"],
                                   "choices": [{"index": 0, "text": "1+1=2\n</think>\n\nThe answer is \\boxed{2}.",
                                                "finish_reason": "stop"}],
                                   "usage": {"prompt_tokens": 5, "completion_tokens": 17, "total_tokens": 22}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        super().__init__(target=self.httpd.serve_forever, daemon=True)


@pytest.mark.parametrize("retries, ok", [(2, True), (1, False)])
def test_429_and_5xx_are_retried_with_backoff(fake, retries, ok):
    """Not a model server: the smallest HTTP server that says 429 then 503, to count the client's retries."""
    pytest.importorskip("openai")
    import openai
    from qwqlab.tasks import Problem

    tok = fake[1]
    flaky = _Flaky()
    flaky.start()
    try:
        settings = ServerSettings(base_url=f"http://127.0.0.1:{flaky.httpd.server_port}/v1", endpoint="completions",
                                  max_retries=retries, extra_body={"repetition_penalty": 1.0})
        run = lambda: sample("m", tok, [Problem("a", "What is 1+1?", "2")], ArithmeticTask(), num_generations=1,
                             top_k=40, max_new_tokens=32, progress=False, backend="openai", server=settings)
        if ok:
            df = run()
            assert df["correct"].tolist() == [1.0] and df["completion_tokens"].tolist() == [17]
            assert len(flaky.seen) == 3                                   # 429, 503, then the answer
        else:
            with pytest.raises(openai.InternalServerError):
                run()
            assert len(flaky.seen) == 2
        sent = flaky.seen[0]
        assert sent["top_k"] == 40 and sent["repetition_penalty"] == 1.0 and sent["max_tokens"] == 32
        assert sent["model"] == "m" and "seed" in sent and "n" not in sent
    finally:
        flaky.httpd.shutdown()


@pytest.mark.slow  # a real server (shared with the tests above)
def test_qwqlab_eval_through_the_server(server, tmp_path):
    """`qwqlab eval` with backend openai: the same row machinery, the server's model id, grader and protocol named."""
    from qwqlab.cli import main

    config = tmp_path / "served_eval.yaml"
    config.write_text(
        f"model: {NANO}\nname: qwq-nano\ntokenizer: {NANO}\ntask: arithmetic\ntask_args: {{split: test}}\n"
        "num_problems: 2\nbackend: openai\n"
        "sampling: {num_generations: 2, temperature: 0.0, top_k: null, max_new_tokens: 96}  # tiny, greedy\n"
        f"openai: {{base_url: '{server.base_url}', endpoint: chat, concurrency: 2, max_retries: 1}}\n"
        f"out: {tmp_path / 'served.jsonl'}\n")
    assert main(["eval", str(config), "--quiet"]) == 0
    row = json.loads((tmp_path / "served.result.json").read_text())
    assert row["backend"] == "openai" and row["model"] == "qwq-nano (this lab, k=2)"
    assert "backend openai" in row["protocol"] and "temperature 0," in row["protocol"]
    table = pd.read_json(tmp_path / "served.jsonl", lines=True)
    assert len(table) == 4 and set(table["backend"]) == {"openai"} and table["think_tokens"].notna().all()


@pytest.mark.slow  # a real server (shared with the tests above)
def test_qwqlab_sample_with_backend_openai(server, tmp_path, capsys):
    from qwqlab.cli import main

    config = tmp_path / "served_sample.yaml"
    config.write_text(f"model: {NANO}\ntask: arithmetic\nnum_problems: 2\n"
                      "sampling: {num_generations: 1, temperature: 0.0, top_k: null, max_new_tokens: 96}  # tiny\n"
                      f"openai: {{base_url: '{server.base_url}', endpoint: chat}}\nout: {tmp_path / 's.jsonl'}\n")
    assert main(["sample", str(config), "--backend", "openai", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 2 and summary["backend"] == "openai"
    table = pd.read_json(tmp_path / "s.jsonl", lines=True)
    assert set(table["model"]) == {"qwq-nano"} and table["think_tokens"].isna().all()  # no tokenizer named
