"""The rollout table on disk: its columns and dtypes, and a file that resumes where a killed run stopped.

``qwqlab.rollouts.sample`` writes its table through ``RolloutStore`` one batch at a time; a
resumed run reuses a row only when ``check_resumable`` finds it was made for the same problem,
by the same weights and settings, with every column a new row has. Anything else is refused
with ``ResumeError`` and the file is left byte for byte as it was.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

from qwqlab.tasks.base import Problem


# ----------------------------------------------------------------------------- the table

#: Columns of a rollout table, in order (``correct`` and ``grade_note`` only when a task grades).
COLUMNS = [
    "problem_id", "sample_index", "question", "gold_answer", "prompt", "completion", "thinking",
    "answer_text", "extracted_answer", "completion_tokens", "think_tokens", "answer_tokens",
    "finish_reason", "is_truncated", "correct", "grade_note",
    "model", "weights_fingerprint", "task", "backend", "num_generations", "temperature", "top_p", "top_k",
    "max_new_tokens", "seed",
]
#: Settings that must match for a resumed run to continue a file.
RUN_SETTINGS = ("model", "weights_fingerprint", "task", "backend", "num_generations", "temperature", "top_p",
                "top_k", "max_new_tokens", "seed")
#: What a row's problem must still be for the row to be reused: the same id with another
#: question, gold answer or prompt is another problem, whose old rows would be wrong.
PROBLEM_FIELDS = ("question", "gold_answer", "prompt")
_INT_COLUMNS = ("sample_index", "completion_tokens", "think_tokens", "answer_tokens", "num_generations",
                "max_new_tokens")


def to_frame(rows: list[dict]):
    """Rows (dicts) as a rollout table with the standard column order and dtypes."""
    import pandas as pd

    df = pd.DataFrame.from_records(rows)
    cols = [c for c in COLUMNS if c in df.columns] + [c for c in df.columns if c not in COLUMNS]
    df = df[cols] if len(df.columns) else pd.DataFrame(columns=[c for c in COLUMNS if c not in ("correct", "grade_note")])
    for c in _INT_COLUMNS:
        if c in df.columns and len(df):  # a count a server did not report stays missing (<NA>), not guessed
            df[c] = df[c].astype("int64") if df[c].notna().all() else pd.to_numeric(df[c]).astype("Int64")
    if "is_truncated" in df.columns and len(df):
        df["is_truncated"] = df["is_truncated"].astype(bool)
    for c in ("correct", "temperature", "top_p"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    if "top_k" in df.columns:  # None means "no top-k"; stored as 0 so the column stays integer
        df["top_k"] = pd.to_numeric(df["top_k"], errors="coerce").fillna(0).astype("int64")
    if "seed" in df.columns:
        df["seed"] = pd.to_numeric(df["seed"], errors="coerce").astype("Int64")
    return df.reset_index(drop=True)


# ----------------------------------------------------------------------------- storage

class ResumeError(ValueError):
    """A rollout file cannot be continued; the message says why and what to do. The file is untouched."""


class RolloutFileBusy(ResumeError):
    """Another process (or another ``sample`` call) is writing the same rollout file right now."""


class RolloutStore:
    """A rollout file that grows one batch at a time and survives being killed mid-write.

    ``.jsonl``: each batch is appended as lines and flushed to disk; a line cut short by a
    kill is moved to ``FILE.torn-N`` on resume and the file continues from the last whole row.
    ``.parquet``: the whole table is rewritten to a temporary file and renamed over the old
    one after each batch (a rename is atomic), so the file on disk is always a complete table.
    Prefer jsonl for very long runs: its appends cost nothing.

    One writer at a time: ``lock()`` takes an exclusive ``flock`` on the sidecar
    ``.FILE.lock`` beside the resolved file (symlinks followed) and, when the file exists, on
    the file itself (its inode, so a hard link is the same file too). The kernel releases both
    if the process dies. A second process resuming the same file, under any of its names, gets
    ``RolloutFileBusy`` instead of sampling the same rows twice. ``load`` only reads;
    ``repair`` (called once every check has passed) is what sets a torn line aside.
    """

    def __init__(self, path):
        self.given = Path(path)
        self.path = Path(os.path.realpath(path))  # one file, whatever link named it: locks and writes go there
        suffix = self.path.suffix.lower()
        if suffix not in (".jsonl", ".parquet"):
            raise ValueError(f"out={str(path)!r}: rollouts are written as .jsonl or .parquet, not {suffix or 'no suffix'!r}.")
        if self.path.suffix.lower() != suffix:
            raise ValueError(f"out={str(path)!r} is a link to {self.path}, which is not a {suffix} file.")
        self.format = suffix[1:]
        self._rows: list[dict] = []
        self._tmp = self.path.with_name(f".{self.path.name}.qwqlab-tmp")
        self._lock_path = self.path.with_name(f".{self.path.name}.lock")
        self._lock_fd: int | None = None
        self._file_fd: int | None = None
        self._torn: tuple[int, bytes] | None = None  # (offset, bytes) of a partial last jsonl line

    def lock(self) -> None:
        """Become the file's only writer, or raise ``RolloutFileBusy`` at once naming the holder."""
        try:
            import fcntl
        except ImportError:  # Windows has no flock; one writer per file is then up to the user
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RolloutFileBusy(
                f"{self.path} is being written by another process right now (pid {holder} holds "
                f"{self._lock_path}). Two writers would sample the same rows twice. Wait for that run to "
                "finish (then resume=True continues it), or pass another out=.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        self._hold_file()

    def _hold_file(self) -> None:
        """Lock the file's inode too: another name for it (a hard link) has another sidecar, but the same inode.

        Called by ``lock`` and again after each write (the first append creates the file; a
        parquet rewrite renames a new inode into place).
        """
        if self._lock_fd is None:
            return
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            self.unlock()
            raise RolloutFileBusy(
                f"{self.given} is being written by another process right now, under another name for the same "
                f"file (a hard link to {self.path}). Two writers would sample the same rows twice. Wait for "
                "that run to finish (then resume=True continues it), or pass another out=.") from None
        if self._file_fd is not None:
            os.close(self._file_fd)
        self._file_fd = fd

    def unlock(self) -> None:
        for name in ("_file_fd", "_lock_fd"):
            fd = getattr(self, name, None)
            if fd is not None:
                os.close(fd)  # closing the descriptor releases the flock
                setattr(self, name, None)

    def __del__(self):  # a store dropped by an exception still lets the next writer in
        self.unlock()

    def clear(self) -> None:
        """Delete the file (``sample(..., overwrite=True)``): the next append starts it afresh."""
        for p in (self.path, self._tmp):
            p.unlink(missing_ok=True)
        self._rows, self._torn = [], None

    def repair(self) -> None:
        """Set a torn last line aside (``FILE.torn-N``) and drop a half-written parquet rewrite.

        Called only after every resume check has passed: a file that is refused stays byte
        for byte as it was.
        """
        if self._tmp.exists():
            self._tmp.unlink()  # a parquet rewrite that a kill interrupted; the real file is intact
        if self._torn is None:
            return
        cut, torn = self._torn
        n = 0
        while self.path.with_name(f"{self.path.name}.torn-{n}").exists():
            n += 1
        aside = self.path.with_name(f"{self.path.name}.torn-{n}")
        aside.write_bytes(torn)
        with open(self.path, "r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
        self._torn = None
        warnings.warn(f"{self.path} ended in a partial line ({len(torn)} bytes), left by a run killed "
                      f"while writing; it was moved to {aside} and those rows will be sampled again.",
                      RuntimeWarning, stacklevel=3)

    def load(self) -> list[dict]:
        """The rows already written (without a torn last jsonl line); raises ``ResumeError`` if unreadable.

        Reads only: the file is not changed (see ``repair``).
        """
        self._torn = None
        if not self.path.exists() or self.path.stat().st_size == 0:
            self._rows = []
            return []
        rows = self._load_jsonl() if self.format == "jsonl" else self._load_parquet()
        for n, row in enumerate(rows, start=1):
            missing = [c for c in ("problem_id", "sample_index", "completion") if row.get(c) is None]
            if missing:
                raise ResumeError(f"{self.path}, row {n}, has no {missing}: it is not a qwqlab rollout file, or "
                                  "it is damaged. It was left untouched; pass another out=.")
        self._rows = rows
        return rows

    def _load_jsonl(self) -> list[dict]:
        data = self.path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut < len(data):
            self._torn = (cut, data[cut:])
            data = data[:cut]
        rows = []
        for n, line in enumerate(data.decode("utf-8", errors="replace").split("\n"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ResumeError(f"{self.path}, line {n}, is not a JSON row ({e}); the file is corrupt. It was "
                                  "left untouched: fix or delete that line, or pass another out=.") from e
            if not isinstance(row, dict):
                raise ResumeError(f"{self.path}, line {n}, is not a JSON object; the file is corrupt. "
                                  "It was left untouched: fix that line, or pass another out=.")
            rows.append(row)
        return rows

    def _load_parquet(self) -> list[dict]:
        import pandas as pd

        try:
            df = pd.read_parquet(self.path)
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise ResumeError(f"{self.path} cannot be read as parquet ({type(e).__name__}: {e}). It was left "
                              "untouched: move it aside, or pass another out=.") from e
        df = df.astype(object).where(df.notna(), None)
        return df.to_dict("records")

    def append(self, rows: list[dict]) -> None:
        """Add one batch of rows durably."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.format == "jsonl":
            payload = "".join(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n" for r in rows)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            if self._file_fd is None:
                self._hold_file()
            return
        self._rows = self._rows + rows
        to_frame(self._rows).to_parquet(self._tmp, index=False)
        with open(self._tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self._tmp, self.path)
        self._hold_file()


def _json_default(x):
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def _same(a, b) -> bool:
    def norm(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        if hasattr(v, "item"):
            v = v.item()
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
    return norm(a) == norm(b)


def check_resumable(path, rows: list[dict], settings: dict, problems: list[Problem], prompts: list[str],
                     graded: bool = False) -> None:
    # Every column a new row of this run will have: a row without them cannot share a table with
    # the new rows (and one without the run's settings cannot be checked against them).
    need = [c for c in COLUMNS if c not in settings and c not in ("correct", "grade_note")] + list(settings) + (
        ["correct", "grade_note"] if graded else [])
    for n, r in enumerate(rows, start=1):
        missing = [c for c in need if c not in r]
        if missing:
            raise ResumeError(
                f"{path}, row {n}, has no {missing[:6]}{' ...' if len(missing) > 6 else ''}: it was not written by "
                "qwqlab's sample() with these settings, so its rows cannot be continued or checked. It was left "
                "untouched; pass another out=, or overwrite=True to sample the file afresh.")
    known = {p.id: (p.question, p.answer, prompt) for p, prompt in zip(problems, prompts)}
    seen, foreign = set(), []
    for r in rows:
        key = (str(r["problem_id"]), int(r["sample_index"]))
        if key in seen:
            raise ResumeError(f"{path} holds problem {key[0]!r}, sample {key[1]} twice: it is not one run's "
                              "output. It was left untouched; pass another out=.")
        seen.add(key)
        if key[0] not in known:
            foreign.append(key[0])
    if foreign:
        raise ResumeError(f"{path} holds rows for problems not in this run (e.g. {foreign[0]!r}): it belongs "
                          "to another run. It was left untouched; pass the same problems, another out=, or "
                          "overwrite=True to sample it afresh.")
    for r in rows:
        for column, want in zip(PROBLEM_FIELDS, known[str(r["problem_id"])]):
            if column in r and not _same(r[column], want):
                raise ResumeError(
                    f"{path} holds problem {str(r['problem_id'])!r} with another {column}: the file has "
                    f"{_short(r[column])}, this run has {_short(want)}. The same id now means another problem, "
                    "so its old rows cannot be reused. Pass another out=, or overwrite=True to sample the file "
                    "afresh. (The file was left untouched.)")
    for name in RUN_SETTINGS:
        want = settings[name]
        for r in rows:
            if name not in r or _same(r[name], want):
                continue
            if name == "weights_fingerprint" and r[name] is None:
                raise ResumeError(
                    f"{path} has no weights fingerprint (written before qwqlab recorded one for this backend), "
                    f"so its rows cannot be checked against this model's weights ({want!r}). Pass another out=, "
                    "or overwrite=True to sample the file afresh. (The file was left untouched.)")
            if name == "weights_fingerprint":
                raise ResumeError(
                    f"{path} was written by other weights (weights_fingerprint {r[name]!r}; this model's is "
                    f"{want!r}): the model was trained, re-quantized or swapped since, so its old rows are "
                    "not this model's. Pass another out=, or overwrite=True to sample the file afresh. "
                    "(The file was left untouched.)")
            raise ResumeError(
                f"{path} was written with {name}={r[name]!r}, but this run has {name}={want!r}. Resuming "
                "would mix two runs in one table. Use the same settings, another out=, or overwrite=True "
                "to sample the file afresh. (The file was left untouched.)")


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 5] + "...'"
