"""Every `qwqlab` command answers a user's mistake in one line naming the file and the fix, exit code 2,
without making a folder; every option has help. In-process (no subprocess per case: cheap)."""
import subprocess
import sys

import pytest

from qwqlab.cli import build_parser, main
from qwqlab.paths import REPO_ROOT

COMMANDS = sorted(build_parser().commands)
POSITIONAL = {"train": ["exp.yaml"], "sample": ["exp.yaml"], "eval": ["exp.yaml"], "plan": ["exp.yaml"]}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_and_option_has_help(command, capsys):
    parser = build_parser().commands[command]
    for action in parser._actions:
        assert action.help, f"qwqlab {command} {'/'.join(action.option_strings) or action.dest}: no help text"
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0 and "usage: qwqlab " + command in capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_a_wrong_option_in_one_line(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, *POSITIONAL.get(command, []), "--no-such-option"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1, err
    assert "--no-such-option" in err and f"qwqlab {command} --help" in err


def _fails_in_one_line(argv, capsys, *needles):
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.mark.parametrize("command", ["train", "sample"])
def test_a_missing_experiment_file(command, tmp_path, capsys):
    _fails_in_one_line([command, str(tmp_path / "nope.yaml")], capsys, "nope.yaml", "No such file",
                       "check the path")


@pytest.mark.parametrize("command", ["train", "sample"])
def test_a_bad_experiment_file(command, tmp_path, capsys):
    bad = tmp_path / "exp.yaml"
    bad.write_text("model: qwq-nano\nno_such_key: 1\n")
    _fails_in_one_line([command, str(bad)], capsys, "exp.yaml", "no_such_key")


def test_figures_with_a_missing_notebook_makes_no_folder(tmp_path, capsys):
    out = tmp_path / "figs"
    _fails_in_one_line(["figures", "--out", str(out), str(tmp_path / "nope.ipynb")], capsys, "nope.ipynb",
                       "notebooks/02_rollout_sampling.ipynb")
    assert not out.exists()


def test_measure_nano_with_a_missing_model(tmp_path, capsys):
    _fails_in_one_line(["measure-nano", "--model", str(tmp_path / "nope")], capsys, "nope", "config.json")


def test_train_nano_into_a_file_not_a_folder(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    _fails_in_one_line(["train-nano", "--out", str(afile / "model"), "--steps", "1", "--no-measure", "--quiet"],
                       capsys, "afile")


def test_info_and_dashboard_refuse_bad_values(capsys):
    for argv, needle in ((["info", "--bits", "3"], "invalid choice: 3"), (["dashboard", "nope"], "'nope'")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and len(err.splitlines()) == 1 and needle in err, err


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only what a user can fix is shortened; anything else is a bug and is raised as it is."""
    import qwqlab.cli as cli

    def boom(args):
        raise KeyError("a bug")

    parser = cli.build_parser()
    parser.commands["info"].set_defaults(func=boom)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    with pytest.raises(KeyError):
        cli.main(["info"])


def test_the_console_command_exits_2():
    out = subprocess.run([sys.executable, "-m", "qwqlab", "sample", "missing.yaml"], capture_output=True,
                         text=True, cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "missing.yaml" in out.stderr


def test_book_from_a_folder_without_executed_notebooks(tmp_path, capsys):
    out = tmp_path / "book"
    _fails_in_one_line(["book", "--executed", str(tmp_path), "--out", str(out)], capsys, str(tmp_path),
                       "qwqlab figures --out DIR")
    assert not out.exists()
