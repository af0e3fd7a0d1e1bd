"""Writing a policy directory safely: compact JSON, sha256 of the weights, atomic replace."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path


def dump_json(obj) -> str:
    """Indented JSON with short lists of numbers (the candidate boxes) kept on one line."""
    text = json.dumps(obj, indent=2)
    return re.sub(r"\[\s+([-0-9.eE,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: Path, write) -> Path:
    """Write through a temporary file in the same directory, then rename: no half-written policy on crash."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shipped policy must be readable by every user
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
