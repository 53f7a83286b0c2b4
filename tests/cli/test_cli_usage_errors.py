"""A command line argparse rejects: one sentence on stderr, exit 2, and with --json one JSON document on stdout."""
from __future__ import annotations

import json

import pytest

from taelio_core.cli import EXIT_USAGE, main


@pytest.mark.parametrize("argv", [["routes", "--bogus", "--json"], ["--json"], ["routes", "--tier", "--json"],
                                  ["health", "--json", "--window", "soon"]])
def test_a_usage_error_with_json_prints_one_json_error_document(argv, capsys) -> None:
    assert main(argv) == EXIT_USAGE
    out, err = capsys.readouterr()
    doc = json.loads(out)                                  # exactly one document: json.loads rejects any extra
    assert doc["exit_code"] == EXIT_USAGE and doc["error_class"] == "UsageError" and doc["error"]
    assert err.startswith("taelio: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_a_usage_error_without_json_prints_only_the_sentence(capsys) -> None:
    assert main(["routes", "--bogus"]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "taelio: error: unrecognized arguments: --bogus (see 'taelio --help')\n"
