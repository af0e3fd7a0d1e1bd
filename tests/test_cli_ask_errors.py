"""`cropper ask --json` answers an error with JSON on stdout and exit 2, and a bad dataset line's message
reads cleanly (issue 26, finding 8's smaller parts)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from cropper.cli import main
from training.datasets import load_jsonl


@pytest.fixture
def white_png(tmp_path):
    path = tmp_path / "white.png"
    Image.new("RGB", (64, 64), "white").save(path)
    return path


def _ask_json_error(capsys, *args) -> tuple[str, str]:
    assert main(["ask", *args, "--json"]) == 2
    captured = capsys.readouterr()
    payload = json.loads(captured.out)  # stdout is exactly one JSON object
    assert set(payload) == {"error"} and isinstance(payload["error"], str) and payload["error"]
    return payload["error"], captured.err


def test_ask_json_reports_a_broken_image_as_json_naming_the_file(capsys, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    error, err = _ask_json_error(capsys, str(bad), "What?")
    assert str(bad) in error
    assert error in err  # the human line on stderr stays


def test_ask_json_reports_a_missing_file_and_a_bad_backend_as_json(capsys, tmp_path, white_png):
    missing = tmp_path / "nope.png"
    error, _ = _ask_json_error(capsys, str(missing), "What?")
    assert str(missing) in error and "not found" in error
    error, _ = _ask_json_error(capsys, str(white_png), "What?", "--backend", "bogus")
    assert "unknown backend spec 'bogus'" in error


def test_ask_without_json_still_errors_on_stderr_only(capsys, tmp_path):
    missing = tmp_path / "nope.png"
    assert main(["ask", str(missing), "What?"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("cropper ask: error: ") and str(missing) in captured.err


@pytest.mark.parametrize("broken, problem", [
    ('{"id": "q1", "question": "What is it\n', "Invalid control character at column"),  # a raw newline in a string
    ('{"id": "q1", "question": "What is it', "Unterminated string starting at column"),  # a last line cut short
    ('{"id": "q1",}\n', "Expecting property name enclosed in double quotes at column"),
])
def test_a_bad_json_line_says_at_column_once(tmp_path, broken, problem):
    path = tmp_path / "data.jsonl"
    path.write_text(broken, encoding="utf-8")
    _, errors = load_jsonl(path, check_images=False)
    assert len(errors) == 1
    message = str(errors[0])
    assert message.startswith(f"{path}:1: not valid JSON (")
    assert problem in message and "at at" not in message
