"""Shared by the proxy tests: the proxy served by uvicorn on a loopback port, and the requests they send."""

from __future__ import annotations

import base64
import io
import threading
import time

from PIL import Image, ImageDraw

from cropper.serve import ServeConfig, create_app
from training.scenes import font


class RunningProxy:
    """The proxy served by uvicorn in a thread, on a free loopback port."""

    def __init__(self, config: ServeConfig):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> RunningProxy:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the proxy did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.root = f"http://127.0.0.1:{port}"
        self.url = f"{self.root}/v1"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def page(value: str = "K4521", key: str = "invoice", size=(900, 600)) -> str:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((520, 420), f"{key.title()}: {value}", fill="black", font=font(26))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def noise(side: int = 400) -> str:
    import numpy as np

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")  # noise does not compress: about 3 bytes per pixel
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def ask(question: str, url: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": question}, {"type": "image_url", "image_url": {"url": url}}]}]
