"""The image half of the crop policy (backbone, neck, fusion, fine cues) served by ONNX Runtime on the CPU.

Everything before the candidate crops depends only on the view and the question, and is a chain of small
convolutions. On the 2-core CPU ONNX Runtime runs that chain in about 0.6x the time of eager PyTorch (even
with the batch norms folded): 12.0 vs 16.3 ms a query at 320 px, one thread, measured in one process. The
runtime is already installed (the reader's OCR runs on it); exporting needs the `onnx` package.

The graph is exported in memory from the policy's own weights (nothing is read from or written to disk)
once the same weights have served `warm_after` inference calls, so a policy whose weights change every
step (training, GRPO sampling) never pays the ~1.5-s export, and a loaded policy pays it once. The first
graph is checked against PyTorch on the input it was built for; any failure (no `onnx`, an op the exporter
does not know, outputs that differ) leaves PyTorch serving those weights, silently. A weight change (an
optimizer step, `load_state_dict`, `.to()`) retires the graph. `CROPPER_ONNX=0` turns it off.

One query (batch 1) runs on one thread: the policy's finder runs on the other core meanwhile. A batch runs
on `torch.get_num_threads()`.
"""

from __future__ import annotations

import copy
import io
import os
import threading
import warnings

import numpy as np
import torch
from torch import nn

from .inference_backbone import weights_key

#: Inference calls with unchanged weights before the graph is exported.
WARM_AFTER = 3


def onnx_enabled() -> bool:
    """False when `CROPPER_ONNX` is set to 0 / false / no / off."""
    return os.environ.get("CROPPER_ONNX", "1").strip().lower() not in ("0", "false", "no", "off")


class _ImageHalf(nn.Module):
    """(images [B, 3, S, S], question [B, Q]) -> the fused map, and the fine cue map when the policy has one."""

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.backbone, self.neck, self.fusion, self.fine = policy.backbone, policy.neck, policy.fusion, policy.fine

    def forward(self, images: torch.Tensor, question: torch.Tensor):
        fmap = self.fusion(self.neck(self.backbone(images)), question)
        return (fmap,) if self.fine is None else (fmap, self.fine(images, question))


class OnnxImageSide:
    """Serves `(fmap, fine)` for a policy in inference from an ONNX Runtime graph once it is warm; see the module doc."""

    def __init__(self, warm_after: int = WARM_AFTER) -> None:
        self.warm_after = warm_after
        self._key: tuple | None = None
        self._calls = 0
        self._graph: bytes | None = None
        self._sessions: dict[int, object] = {}
        self._lock = threading.Lock()

    def __reduce__(self):
        # A copied or unpickled policy starts cold: its graph is exported from its own weights.
        return (type(self), (self.warm_after,))

    @property
    def serving(self) -> bool:
        """True when the last weights seen are served by the graph."""
        return self._graph is not None

    @staticmethod
    def weights(policy: nn.Module) -> tuple:
        """What identifies the image half's weights now (`weights_key` over them): a caller may take it
        on another thread beforehand and pass it to the call."""
        return weights_key([m for m in (policy.backbone, policy.neck, policy.fusion, policy.fine) if m is not None])

    def __call__(self, policy: nn.Module, images: torch.Tensor, question: torch.Tensor, weights: tuple | None = None):
        """`(fmap, fine or None)` from the graph, or None: then PyTorch serves this call. `weights`: the
        policy's `weights(policy)`, taken since its weights last changed (computed here when not given)."""
        if (images.device.type != "cpu" or images.dtype != torch.float32 or question.dtype != torch.float32
                or not onnx_enabled()):
            return None  # (turned off: no walk over the weights, which the folded backbone makes anyway)
        key = (weights if weights is not None else self.weights(policy), tuple(images.shape[1:]),
               tuple(question.shape[1:]))
        with self._lock:
            if key != self._key:
                self._key, self._calls, self._graph, self._sessions = key, 0, None, {}
            self._calls += 1
            if self._graph is None:
                if self._calls != self.warm_after:
                    return None  # not warm yet, or this key already failed to export
                self._graph = _export(policy, images, question)
                if self._graph is None:
                    return None
            threads = 1 if images.shape[0] == 1 else torch.get_num_threads()
            session = self._sessions.get(threads) or self._sessions.setdefault(threads, _session(self._graph, threads))
        outputs = session.run(None, {"images": images.numpy(), "question": question.numpy()})
        maps = [torch.from_numpy(o) for o in outputs]
        return maps[0], (maps[1] if len(maps) > 1 else None)


def _export(policy: nn.Module, images: torch.Tensor, question: torch.Tensor) -> bytes | None:
    """The image half as ONNX bytes, checked against PyTorch on this input; None when that fails."""
    try:
        import onnx  # noqa: F401  (the exporter needs it; say None rather than fail deep inside)
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    half = copy.deepcopy(_ImageHalf(policy)).eval().requires_grad_(False)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation chatter: the result is checked below
            want = half(images, question)
            torch.onnx.export(half, (images, question), buffer, dynamo=False, opset_version=17,
                              input_names=["images", "question"],
                              output_names=["fmap", "fine"][: len(want)],
                              dynamic_axes={"images": {0: "batch"}, "question": {0: "batch"}})
        graph = buffer.getvalue()
        got = _session(graph, 1).run(None, {"images": images.numpy(), "question": question.numpy()})
    except Exception:  # an op the exporter or the runtime does not know: PyTorch keeps serving
        return None
    for w, g in zip(want, got, strict=True):
        w = w.numpy()
        if w.shape != g.shape or not np.allclose(w, g, rtol=1e-3, atol=1e-4 * max(float(np.abs(w).max()), 1.0)):
            return None
    return graph


def _session(graph: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: the runtime's notes about unused initializers are noise
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
