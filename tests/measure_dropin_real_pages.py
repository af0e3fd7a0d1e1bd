"""Drop-in on real pages: visual tokens and bytes sent, plain vs wrapped (`policy`, text-regions), per provider.

A measurement, not a test (pytest does not collect it): the real SDKs against the test fakes, which check the
providers' documented limits. The fakes' replies are canned, so this measures cost and size, not accuracy.

    pdftoppm -r 300 -png -f 1 -l 3 /usr/share/doc/libtasn1-doc/libtasn1.pdf DIR/libtasn1
    chromium --headless --screenshot=DIR/shot.png --window-size=1920,3000 file:///usr/share/doc/libffi8/html/index.html
    python tests/measure_dropin_real_pages.py DIR
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anthropic  # noqa: E402
import fake_wire_checks as checks  # noqa: E402
import openai  # noqa: E402
from fake_servers import FakeAnthropicServer, FakeOpenAIServer  # noqa: E402
from PIL import Image  # noqa: E402
from test_dropin_matrix import anthropic_visual_tokens, openai_visual_tokens  # noqa: E402

from cropper import ZoomWrapper  # noqa: E402

QUESTION = "What is the title of this page?"


def largest_image(body) -> int:
    """The longest base64 image string in a body (bytes of base64)."""
    sizes = [0]

    def walk(value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key in ("data", "url") and isinstance(inner, str) and len(inner) > 1000:
                    sizes.append(len(inner))
                else:
                    walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(body)
    return max(sizes)


def measure(folder: str) -> list[tuple]:
    rows = []
    with FakeOpenAIServer() as oai, FakeAnthropicServer() as ant:
        oai_client = openai.OpenAI(base_url=oai.url, api_key="fake", max_retries=0)
        ant_client = anthropic.Anthropic(base_url=ant.url, api_key="fake", max_retries=0)
        for path in sorted(Path(folder).glob("*.png")):
            width, height = Image.open(path).size
            data = base64.b64encode(path.read_bytes()).decode()
            where = (path.name, f"{width}x{height}")
            for model in ("gpt-4o", "gpt-4.1-mini"):
                messages = [{"role": "user", "content": [
                    {"type": "text", "text": QUESTION},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}]}]
                oai.reset()
                oai_client.chat.completions.create(model=model, messages=messages)
                plain = openai_visual_tokens(oai.bodies[0])
                oai.reset()
                wrapper = ZoomWrapper(oai_client, strategy="policy")
                wrapper.chat.completions.create(model=model, messages=messages)
                body = oai.bodies[-1]
                rows.append((*where, model, plain, openai_visual_tokens(body),
                             "zoomed" if wrapper.last_answer else "passthrough", largest_image(body),
                             checks.openai_problem(body)))
            messages = [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
                {"type": "text", "text": QUESTION}]}]
            ant.reset()
            ant_client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=messages)
            plain = anthropic_visual_tokens(ant.bodies[0])
            ant.reset()
            wrapper = ZoomWrapper(ant_client, strategy="policy")
            wrapper.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=messages)
            body = ant.bodies[-1]
            rows.append((*where, "claude-sonnet-4-5", plain, anthropic_visual_tokens(body),
                         "zoomed" if wrapper.last_answer else "passthrough", largest_image(body),
                         checks.anthropic_problem(body)))
    return rows


if __name__ == "__main__":
    print("| image | size | model | plain tokens | wrapped tokens | outcome | largest image sent (b64 bytes) | "
          "limit problem |")
    print("|---|---|---|---|---|---|---|---|")
    for row in measure(sys.argv[1]):
        print("| " + " | ".join(str(x) for x in row) + " |")
