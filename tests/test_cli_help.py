"""Every `--help` lists every spec form its flags accept (issue 27)."""

from __future__ import annotations

import pytest

from cropper.cli import main

BACKEND_FORMS = ["reader", "openai:MODEL", "openai-compatible:http://HOST:PORT/v1#MODEL", "anthropic:MODEL",
                 "hf:PATH_OR_ID"]
CROPPER_FORMS = ["text-regions", "policy:DIR", "grid:N", "awares9", "multiscale", "vlm:BACKEND_SPEC"]
STRATEGY_FORMS = ["low", "full", "policy:CROPPER", "LABEL=policy:CROPPER", "tool:awares", "LABEL=tool:awares"]


def help_text(command: str, capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    # argparse wraps lines, at hyphens too ("openai-" / "compatible"): compare with all whitespace removed.
    return "".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(("command", "forms"), [
    ("ask", BACKEND_FORMS + CROPPER_FORMS),
    ("compare", BACKEND_FORMS + CROPPER_FORMS + STRATEGY_FORMS),
    ("serve", BACKEND_FORMS + CROPPER_FORMS),
])
def test_help_lists_every_spec_form(command, forms, capsys):
    text = help_text(command, capsys)
    assert [form for form in forms if form not in text] == []
