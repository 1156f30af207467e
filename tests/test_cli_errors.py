"""The error contract of the command line: a user's mistake in any sub-command ends as one
line on stderr naming the bad value, exit code 2, and no traceback.

Every sub-command is listed from the CLI's own registry (``COMMANDS``, and the actions of
the commands that have them), so a new command without a case here fails this test.
"""
from __future__ import annotations

import argparse

import pytest

from openmm_distill.cli import COMMANDS, build_parser, main
from openmm_distill.errors import (
    DistillError,
    MissingDependencyError,
    MissingFileError,
    UnknownNameError,
)


def _actions(command: str):
    """Names of the sub-parsers of ``command`` (e.g. ``dataset stats``), from the parser itself."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    nested = [a for a in sub.choices[command]._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(nested[0].choices) if nested else []


# One bad input per sub-command: (argv, the bad value the message must name). "{tmp}" is a
# temporary folder. Each fails on the bad value before any expensive work starts.
BAD_INPUT = {
    "pipeline": (["pipeline", "no_such_config.yaml"], "no_such_config.yaml"),
    "demo": (["demo", "--molecule", "asprin", "--steps", "10"], "asprin"),
    "presets": (["presets", "--json=yes"], "yes"),
    "compile": (["compile", "{tmp}/missing.pt", "-o", "{tmp}/out.pt"], "missing.pt"),
    "info": (["info", "no_such_student"], "no_such_student"),
    "systems": (["systems", "--write", "asprin", "-o", "{tmp}/a.sdf"], "asprin"),
    "label": (["label", "--molecules", "asprin", "-o", "{tmp}/a.h5"], "asprin"),
    "explore": (["explore", "--student", "tiny", "--molecules", "asprin", "-o", "{tmp}/a.h5"], "asprin"),
    "dataset stats": (["dataset", "stats", "{tmp}/missing.h5"], "missing.h5"),
    "dataset validate": (["dataset", "validate", "{tmp}/missing.h5"], "missing.h5"),
    "dataset merge": (["dataset", "merge", "{tmp}/missing.h5", "-o", "{tmp}/m.h5"], "missing.h5"),
    "train": (["train", "no_such_recipe"], "no_such_recipe"),
    "evaluate": (["evaluate", "--student", "tiny", "--data", "{tmp}/missing.h5"], "missing.h5"),
    "protocol nve": (["protocol", "nve", "--student", "tiny", "--systems", "asprin"], "asprin"),
    "protocol throughput": (["protocol", "throughput", "--student", "tiny", "--systems", "{tmp}/gone.pdb"],
                            "gone.pdb"),
    "protocol accuracy": (["protocol", "accuracy", "--student", "no_such_student", "--systems", "ethanol"],
                          "no_such_student"),
    "protocol stability": (["protocol", "stability", "--student", "tiny", "--systems", "asprin"], "asprin"),
    "protocol report": (["protocol", "report", "--student", "tiny", "--systems", "asprin"], "asprin"),
    "protocol merge": (["protocol", "merge", "{tmp}/no_such_run", "{tmp}/no_such_run2", "-o", "{tmp}/merged"],
                       "no_such_run"),
    "protocol failures": (["protocol", "failures", "{tmp}/no_such_run"], "no_such_run"),
}


def test_every_sub_command_has_a_bad_input_case():
    expected = set()
    for command in COMMANDS:
        actions = _actions(command)
        expected |= {f"{command} {a}" for a in actions} if actions else {command}
    assert set(BAD_INPUT) == expected


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_a_bad_input_is_one_line_and_exit_code_2(case, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENMM_DISTILL_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)  # nothing may be written into the checkout
    argv, bad = BAD_INPUT[case]
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if not line.startswith(("usage:", " "))]
    assert lines, err
    last = lines[-1]
    assert last.startswith(f"openmm-distill {argv[0]}: error: "), err
    assert bad in last, err


def test_a_misspelled_molecule_gets_the_catalog_suggestion(capsys, tmp_path):
    assert main(["label", "--molecules", "asprin", "-o", str(tmp_path / "a.h5")]) == 2
    assert "unknown molecule 'asprin'; did you mean aspirin" in capsys.readouterr().err


def test_ctrl_c_is_one_line_and_exit_code_2(capsys, monkeypatch):
    import openmm_distill.cli.presets as presets

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(presets, "run", interrupted)
    assert main(["presets"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "openmm-distill presets: error: interrupted (Ctrl-C)"


def test_debug_variable_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("OPENMM_DISTILL_DEBUG", "1")
    with pytest.raises(MissingFileError, match="no_such_student"):
        main(["info", "no_such_student"])


def test_error_types_keep_the_builtin_type_callers_expect():
    assert issubclass(MissingFileError, FileNotFoundError) and issubclass(MissingFileError, DistillError)
    assert issubclass(UnknownNameError, KeyError)
    # KeyError's str() would quote the message; ours reads as a sentence.
    assert str(UnknownNameError("unknown molecule 'x'")) == "unknown molecule 'x'"
    exc = MissingDependencyError("sevenn", 'pip install "openmm-distill[sevennet]"', "the 'sevennet' teacher")
    assert isinstance(exc, ImportError) and exc.name == "sevenn"
    assert str(exc) == ("sevenn is not installed (needed for the 'sevennet' teacher); "
                        'install it with: pip install "openmm-distill[sevennet]"')
    # Errors raised in worker processes (labelling, protocol jobs) come back through pickle intact.
    import pickle

    for error in (exc, UnknownNameError("unknown molecule 'x'"), MissingFileError("no file 'x'")):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error)


def test_a_missing_optional_teacher_names_the_install_command(tmp_path, capsys, monkeypatch):
    import sys

    # As if orb-models were not installed; its submodules too, which an earlier test may have imported
    # (an import finds "orb_models.forcefield" in sys.modules without looking at its parent).
    for name in [m for m in sys.modules if m == "orb_models" or m.startswith("orb_models.")] + ["orb_models"]:
        monkeypatch.setitem(sys.modules, name, None)
    argv = ["label", "--smiles", "water=O", "-o", str(tmp_path / "w.h5"), "--teacher", "orb-v2", "--md-snapshots", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "orb-models is not installed" in err and "pip install 'openmm-distill[orb]'" in err
