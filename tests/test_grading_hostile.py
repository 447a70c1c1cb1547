"""Issue 22: the grader froze the whole process when called from a worker thread.

``2^{99!}`` and ``{999!}^{9!}`` passed the risky-shape filter, and from a thread pool sympy's
C-level power held the GIL forever: the call never returned and no other thread ran, not even
a watchdog. Now those shapes are risky (compared as strings), and whatever still reaches
Math-Verify from a thread runs in a forked child that is killed at its deadline. The thread test
runs in a subprocess with a timeout, so it ends in bounded time even when the grader is broken.
"""
import subprocess
import sys
import textwrap

import pytest

from qwqlab import grading

PATHOLOGICAL = ["2^{99!}", "{999!}^{9!}"]


@pytest.mark.parametrize("latex", PATHOLOGICAL)
def test_a_factorial_with_a_power_is_risky(latex):
    assert grading._is_risky(latex)
    assert not grading._is_risky("5!") and not grading._is_risky("2^{10}")


# _is_risky is switched off in the child script, so the expressions reach sympy: the test is of
# the last line of defence, not of the shape filter.
SCRIPT = textwrap.dedent("""
    import threading, time
    from concurrent.futures import ThreadPoolExecutor
    import qwqlab.grading as G
    G._is_risky = lambda latex: False
    beats = []
    def watchdog():
        while True:
            beats.append(time.monotonic())
            time.sleep(0.05)
    threading.Thread(target=watchdog, daemon=True).start()
    start = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(G.answers_match, e, "5") for e in %r]
        futures.append(pool.submit(G.answers_match, r"\\frac{10}{2}", "5"))
        verdicts = [f.result() for f in futures]
    print(verdicts, round(time.monotonic() - start, 1), round(max(b - a for a, b in zip(beats, beats[1:])), 2))
""" % (PATHOLOGICAL,))


def test_pathological_expressions_from_a_thread_pool_end_and_the_process_keeps_running():
    try:
        r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("the grader froze the process: a thread pool's call never returned")
    assert r.returncode == 0, r.stderr[-2000:]
    verdicts, seconds, watchdog_gap = r.stdout.strip().rsplit("]", 1)[0] + "]", *r.stdout.split("]")[-1].split()
    assert verdicts == "[None, None, 1.0]"  # cannot be judged (ran out of time); the honest one still judged
    assert float(seconds) < 2 * grading.CHILD_DEADLINE_S + 10  # 2 workers; 2 shared cores
    assert float(watchdog_gap) < 2.0  # the GIL was never held for long: other threads ran throughout
