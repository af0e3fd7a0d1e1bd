"""`CropPolicy`: a small question-conditioned network that picks the crops a frozen VLM should see.

    policy = CropPolicy.default()                    # the bundled policy
    boxes = policy.propose(image, "What is written on the green sign?")   # [] = no crop needed

Pipeline: the image is resized to a square `image_size` view (aspect NOT kept: every normalized box then
maps to the same fraction of the feature map, batches need no padding, and no backbone compute goes to
letterbox bars; the candidate geometry and the crops themselves are always in original-image coordinates)
-> timm backbone (`features_only`, last two levels) -> FPN-lite neck -> fusion with the question embedding
(frozen MiniLM, `film` or `xattn`) -> a gate logit and a score per candidate crop.

The candidates are a fixed crop set (AwaRes-9 and multi-scale grids, `crop_set`) plus up to `proposals`
boxes found in this image by `cropper.proposals` (sign-like blobs of every colour, text zones: a few ms of
OpenCV on the same view), as a two-stage detector scores region proposals. A candidate's score comes from
RoI average and RoI max of the fused map, of a shallow stride-4 question-modulated map (`FineCues`, for
things a few pixels wide in the view) and of the colour-name map over its box, its geometry, and the
question (an MLP); optional box deltas refine it. `propose` takes the best candidates after NMS: `k` of
them, or with `mass` as many as it takes (at most `k`) to hold that share of the score distribution, so
an unsure policy sends more crops (a form field it cannot read yet: every text block that may hold it),
within `max_area` of the image.

Saved as a directory: `config.json` (the config, the resolved candidate boxes, the weights' sha256) and
`model.safetensors`. The frozen text encoder is never saved, only its name.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from backends.reader.colours import PALETTE, colour_code_table, name_codes

from .crop_selection import Decision, more_crops, select_crops
from .geometry import Box, crop_set
from .inference_backbone import InferenceBackbone
from .onnx_image_side import OnnxImageSide, onnx_enabled
from .policy_heads import FUSIONS, CropHeads, FineCues, Neck, apply_deltas, encode_deltas
from .policy_io import atomic_write, dump_json, sha256_file
from .proposals import colour_shares, find_proposals
from .question_cues import CUE_DIM, question_cues
from .text_encoder import EMBED_DIM, shared_encoder

FORMAT = "cropper-policy/2"
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"
DEFAULT_DIR = Path(__file__).resolve().parent / "weights" / "default_policy"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

__all__ = ["CropPolicy", "PolicyConfig", "PolicyOutput", "PolicyLoadError", "Decision", "Prepared", "candidate_set",
           "apply_deltas", "encode_deltas"]


def candidate_set(name: str) -> dict[str, Box]:
    """Candidate crops: a `crop_set` name, or several joined by `+` (`awares9+multiscale:3,4`).

    Names stay as the parts give them (`top_left`, `s3_r0c0`); an exact duplicate box is kept once, and a
    name already taken by a different box is prefixed with its part (`grid:3/r0c0`).
    """
    out: dict[str, Box] = {}
    for part in (p.strip() for p in name.split("+")):
        if not part:
            raise ValueError(f"candidate set {name!r} has an empty part")
        for crop_name, box in crop_set(part).items():
            if box in out.values():
                continue
            out[crop_name if crop_name not in out else f"{part}/{crop_name}"] = box
    return out


@dataclass
class PolicyConfig:
    """Everything that defines a policy; saved as `config.json`."""

    backbone: str = "mobilenetv3_small_100"  # any timm name that supports features_only
    pretrained: bool | str = False  # True: timm's weights (must be in the local cache); str: a local weights file
    image_size: int = 320  # side of the square low-res view fed to the backbone
    crop_set: str = "awares9+multiscale:3,4"  # see candidate_set(): 9 + 9 + 16 = 34 candidates
    # Resolved from crop_set when None and saved explicitly, so a saved policy keeps its boxes even if the
    # crop sets change; with dataclasses.replace(config, crop_set=...) also pass candidates=None.
    candidates: dict[str, list[float]] | None = None
    fusion: str = "film"  # "film" or "xattn"
    dim: int = 96  # channels of the fused feature map
    hidden: int = 192  # width of the head MLPs
    xattn_queries: int = 4
    xattn_heads: int = 4
    # Predict box deltas per candidate. Off by default: on the synthetic mix a refined box, regressed
    # toward the padded evidence the low-res view can only guess at, missed the evidence more often than
    # the candidate it came from (top-1 hits 19% refined vs 49% unrefined, same network, same training).
    refine: bool = False
    fine_dim: int = 16  # channels of the stride-4 question-modulated cue map (0: none); see FineCues
    # Also score up to this many boxes found in the image itself (signs and text zones, see
    # `cropper.proposals`; 0: the fixed candidates only). A 10-px sign rarely fits a fixed grid cell.
    proposals: int = 96
    colours: bool = True  # describe candidates by their colour-name shares, matched against the question
    # Append the colour and quadrant the question names (`cropper.question_cues`) to its embedding, and
    # match them exactly against each candidate. Configs saved before this field existed load as False.
    cues: bool = True
    max_shift: float = 0.25  # refined centre moves by at most this fraction of the box's side
    max_scale: float = 2.0  # refined sides scale by at most this factor either way
    encoder: str = "minilm"  # question encoder name ("minilm"; "hash" only for tests)
    k: int = 1  # crops proposed by default (with `mass`: at most this many)
    # When set, the number of crops adapts: crops are added best first until the candidates they hold carry
    # this much of the score distribution (the policy's estimate that the evidence is covered), at most k.
    # A confident policy then sends one crop; an unsure one (the evidence could be in any of several text
    # blocks) sends a few, which is what a reader of the low-res view would do.
    mass: float | None = None
    gate_threshold: float = 0.5  # propose nothing when sigmoid(gate) is below this
    nms_iou: float = 0.5  # a chosen crop suppresses candidates overlapping it more than this
    max_area: float | None = None  # crops after the first stop once their total share of the image would pass this
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (training data, metrics)

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {self.fusion!r}; choose one of {', '.join(FUSIONS)}")
        if self.candidates is None:
            self.candidates = {n: b.to_list(None) for n, b in candidate_set(self.crop_set).items()}
        if not self.candidates:
            raise ValueError("the policy needs at least one candidate crop")
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32, got {self.image_size}")


@dataclass
class PolicyOutput:
    """Raw outputs: `gate_logit` [B], `crop_logits` [B, C], `box_deltas` [B, C, 4] in [-1, 1] or None."""

    gate_logit: torch.Tensor
    crop_logits: torch.Tensor
    box_deltas: torch.Tensor | None
    boxes: torch.Tensor | None = None  # [B, C, 4] the candidates scored (None: the fixed ones)


@dataclass
class Prepared:
    """One image made ready for the network (`CropPolicy.prepare`): its view and its candidate crops."""

    view: torch.Tensor  # [3, S, S] normalized
    boxes: list[Box]  # the fixed candidates, then the ones found in this image
    fixed: int  # how many of `boxes` are the fixed candidates
    colours: torch.Tensor | None = None  # [K, S/4, S/4] colour-name shares (`colour_shares`)


class CropPolicy(nn.Module):
    """Question-conditioned crop selector over a candidate set; see the module docstring."""

    def __init__(self, config: PolicyConfig | None = None, encoder=None, token_model=None, **overrides):
        super().__init__()
        import timm

        config = config or PolicyConfig()
        if isinstance(encoder, str):  # a name is a config field ("minilm", "hash"); an object is the encoder
            overrides["encoder"], encoder = encoder, None
        if overrides:
            if "crop_set" in overrides and "candidates" not in overrides:
                overrides["candidates"] = None  # re-resolve the candidates from the new crop set
            config = dataclasses.replace(config, **overrides)
        self.config = config
        kwargs: dict[str, Any] = {"features_only": True, "out_indices": (-2, -1)}
        if isinstance(config.pretrained, str):
            if not Path(config.pretrained).is_file():
                raise FileNotFoundError(f"pretrained weights file {config.pretrained!r} not found")
            kwargs["pretrained_cfg_overlay"] = {"file": str(config.pretrained)}
        try:
            self.backbone = timm.create_model(config.backbone, pretrained=bool(config.pretrained), **kwargs)
        except Exception as exc:  # unknown name, no features_only support, weights not in the local cache
            hint = " (pretrained weights must already be on disk: pass a file path, or pretrained=False)" \
                if config.pretrained else ""
            raise ValueError(f"backbone {config.backbone!r} cannot be built: {exc}{hint}") from exc
        cfg = getattr(self.backbone, "pretrained_cfg", None) or {}
        mean, std = cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD)
        # The finest level first; the neck adds the coarser one onto it.
        self.neck = Neck(list(self.backbone.feature_info.channels()), config.dim)
        fusion_cls = FUSIONS[config.fusion]
        extra = {"queries": config.xattn_queries, "heads": config.xattn_heads} if config.fusion == "xattn" else {}
        self.question_dim = EMBED_DIM + (CUE_DIM if config.cues else 0)
        self.fusion = fusion_cls(config.dim, self.question_dim, config.hidden, **extra)
        colours = len(PALETTE) if config.colours else 0
        self.heads = CropHeads(config.dim, self.question_dim, config.hidden, refine=config.refine,
                               fine_dim=config.fine_dim, colours=colours, cues=config.cues)
        self.fine = FineCues(config.fine_dim, self.question_dim, config.hidden) if config.fine_dim else None
        self.register_buffer("colour_codes", torch.from_numpy(colour_code_table()).long(), persistent=False)
        self.candidate_names = list(config.candidates)
        self.candidate_boxes = [Box.from_list(v) for v in config.candidates.values()]
        self.register_buffer("candidates", torch.tensor([list(b) for b in self.candidate_boxes], dtype=torch.float32),
                             persistent=False)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self._encoder = encoder
        self.token_model = token_model
        self.crop_side: int | None = None  # the long side crops are sent at (None: original), for budgets
        self._inference_backbone = InferenceBackbone()
        self._onnx_image_side = OnnxImageSide()

    def __repr__(self) -> str:
        c = self.config
        return (f"CropPolicy(backbone={c.backbone!r}, image_size={c.image_size}, fusion={c.fusion!r}, "
                f"candidates={len(self.candidate_names)}, refine={c.refine}, k={c.k})")

    # --- tensors ------------------------------------------------------------------------------------------

    @property
    def image_side_runtime(self) -> str:
        """What computes the image half of the network now: "onnxruntime" (the exported copy) or "pytorch"."""
        return "onnxruntime" if self._onnx_image_side.serving else "pytorch"

    @property
    def device(self) -> torch.device:
        return self.candidates.device

    @property
    def encoder(self):
        """The frozen question encoder (shared per process; runs on CPU, results moved to the policy)."""
        if self._encoder is None:
            self._encoder = shared_encoder(self.config.encoder)
        return self._encoder

    def encode_questions(self, questions: list[str]) -> torch.Tensor:
        """[n, question_dim] question vectors on the policy's device: the 384-d embedding, then (with
        `config.cues`) the parsed colour / quadrant cues."""
        emb = self.encoder.encode(list(questions))
        if self.config.cues:
            emb = torch.cat([emb, question_cues(list(questions))], dim=1)
        return emb.to(self.device)

    def _question_vector(self, question: str) -> torch.Tensor:
        """[1, question_dim] for one question on the CPU (both parts cached per question string)."""
        emb = self.encoder.encode_one(question)[None]
        return torch.cat([emb, question_cues(question)], dim=1) if self.config.cues else emb

    def view(self, image: Image.Image) -> np.ndarray:
        """The low-res view as uint8 RGB [S, S, 3]: the image resized to the square side S."""
        side = self.config.image_size
        if image.mode != "RGB":
            image = image.convert("RGB")
        if max(image.size) > 3 * side:
            # 3x3 supersampling (nearest to 3S, then a 3x3 box average): 9 samples per output pixel, ~7 ms
            # on a 12 MP scan where an area filter reads every pixel and costs 20-30 ms.
            big = image.resize((3 * side, 3 * side), Image.Resampling.NEAREST)
            if (os.cpu_count() or 1) < 2 or threading.current_thread().name.startswith(_FINDER):
                return np.asarray(big.reduce(3))  # (the finder's own thread would wait on itself)
            # The box average in two bands side by side (Pillow releases the GIL): the same pixels,
            # ~0.7 ms sooner at 320 px. (Resizing in bands too would save more, but Pillow's nearest
            # rows then drift by one for some image heights, so the view would change.)
            cut = 3 * (side // 2)
            lower = _finder_pool().submit(big.reduce, 3, (0, cut, 3 * side, 3 * side))
            return np.concatenate([np.asarray(big.reduce(3, (0, 0, 3 * side, cut))), np.asarray(lower.result())])
        return np.asarray(image.resize((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0))

    def preprocess(self, image: Image.Image | np.ndarray) -> torch.Tensor:
        """The low-res view [3, S, S] (an image, or a `view` already made), normalized (ImageNet mean/std)."""
        view = image if isinstance(image, np.ndarray) else self.view(image)
        # Channels first in numpy (uint8) before the conversion: the float pass then reads contiguously.
        x = torch.from_numpy(np.ascontiguousarray(view.transpose(2, 0, 1)))
        std = self.std[0].cpu()
        # (x / 255 - mean) / std as one fused multiply-add: half the time of three passes.
        return torch.addcmul(-self.mean[0].cpu() / std, x.float(), 1.0 / (255.0 * std))

    def prepare(self, image: Image.Image) -> Prepared:
        """Everything the network needs from one image: the normalized view and the candidate crops."""
        view = self.view(image)
        return Prepared(self.preprocess(view), *self._candidates(view))

    def _candidates(self, view: np.ndarray) -> tuple[list[Box], int, torch.Tensor | None]:
        """The candidate boxes of a view (fixed, then found), how many are fixed, and its colour map."""
        boxes = list(self.candidate_boxes)
        codes = name_codes(view) if self.config.proposals and self.config.colours else None  # shared by both
        found = find_proposals(view, self.config.proposals, codes) if self.config.proposals else []
        colours = torch.from_numpy(colour_shares(view, 4, codes)) if self.config.colours else None
        return boxes + Box.many_from_lists(found), len(boxes), colours

    def collate(self, prepared: list[Prepared], images: bool = True) -> dict[str, torch.Tensor]:
        """The network's inputs for a batch, on the policy's device: `images` [B, 3, S, S], candidate `boxes`
        [B, C, 4] (padded to the most candidates in the batch), `proposed` [B, C], the padding `mask` [B, C]
        (True: a real box) and, with `config.colours`, `colours` [B, K, S/4, S/4]. Call `policy(q=..., **it)`.
        `images=False` leaves the views out (a caller that already has them on the device)."""
        c = max(len(p.boxes) for p in prepared)
        boxes = torch.zeros(len(prepared), c, 4)
        boxes[..., 2:] = 1.0  # padding: a harmless full-image box, masked out of the scores
        proposed = torch.zeros(len(prepared), c)
        mask = torch.zeros(len(prepared), c, dtype=torch.bool)
        for i, p in enumerate(prepared):
            boxes[i, : len(p.boxes)] = torch.tensor([(b.x1, b.y1, b.x2, b.y2) for b in p.boxes])
            proposed[i, p.fixed : len(p.boxes)] = 1.0
            mask[i, : len(p.boxes)] = True
        out = {"boxes": boxes, "proposed": proposed, "mask": mask}
        if images:
            out["images"] = torch.stack([p.view for p in prepared])
        if all(p.colours is not None for p in prepared):
            out["colours"] = torch.stack([p.colours for p in prepared])
        return {k: v.to(self.device) for k, v in out.items()}

    def forward(self, images: torch.Tensor, question_emb: torch.Tensor, boxes: torch.Tensor | None = None,
                proposed: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                colours: torch.Tensor | None = None, maps=None) -> PolicyOutput:
        """`images` [B, 3, S, S] (from `preprocess`), `question_emb` [B, question_dim] (`encode_questions`)
        -> `PolicyOutput`.

        `boxes` [B, C, 4] are the candidates (default: the fixed ones for every image), `proposed` [B, C]
        marks those found in the image, and `mask` [B, C] the real ones (padding scores -1e4); `colours` is
        the colour-name map (computed from `images` when not given). See `collate`. `maps`: the output of
        `_image_maps` for these images and questions when already computed.
        """
        if images.dim() != 4 or question_emb.dim() != 2 or images.shape[0] != question_emb.shape[0]:
            raise ValueError(f"expected images [B, 3, S, S] and question_emb [B, {self.question_dim}], got "
                             f"{tuple(images.shape)} and {tuple(question_emb.shape)}")
        b = images.shape[0]
        if boxes is None:
            boxes = self.candidates[None].expand(b, -1, -1)
        if proposed is None:
            proposed = torch.zeros(boxes.shape[:2], device=boxes.device)
        fmap, fine = maps if maps is not None else self._image_maps(images, question_emb)
        if self.config.colours and colours is None:
            colours = self.colour_map(images)
        gate, scores, deltas = self.heads(fmap, question_emb, boxes, proposed, fine, colours)
        if mask is not None:
            scores = scores.masked_fill(~mask, -1e4)
        return PolicyOutput(gate, scores, deltas, boxes)

    def _image_maps(self, images: torch.Tensor, question_emb: torch.Tensor, weights: tuple | None = None):
        """The fused feature map and the fine cue map: everything that does not depend on the candidates.
        `weights`: `OnnxImageSide.weights(self)`, when the caller already took it."""
        if self.training or torch.is_grad_enabled():
            features = self.backbone(images)
        else:
            # Warm weights on the CPU: ~0.6x the time.
            maps = self._onnx_image_side(self, images, question_emb, weights)
            if maps is not None:
                return maps
            # Otherwise the batch-norm-folded copy: same features in ~0.6x the time of the eager backbone.
            features = self._inference_backbone(self.backbone, images)
        fmap = self.fusion(self.neck(features), question_emb)
        fine = self.fine(images, question_emb) if self.fine is not None else None
        return fmap, fine

    @torch.no_grad()
    def colour_map(self, images: torch.Tensor) -> torch.Tensor:
        """[B, K, S/4, S/4]: the share of each colour name (`backends.reader.colours`) per 4x4 cell of the view."""
        rgb = ((images.float() * self.std + self.mean) * 255).round().clamp(0, 255).long() >> 4
        codes = self.colour_codes[rgb[:, 0] * 256 + rgb[:, 1] * 16 + rgb[:, 2]]  # B, S, S
        onehot = F.one_hot(codes, len(PALETTE)).permute(0, 3, 1, 2).float()
        return F.avg_pool2d(onehot, 4)

    def refined_boxes(self, out: PolicyOutput) -> torch.Tensor:
        """[B, C, 4] candidate boxes after the deltas (the candidates themselves without refinement)."""
        boxes = out.boxes if out.boxes is not None else self.candidates[None].expand(out.crop_logits.shape[0], -1, -1)
        if out.box_deltas is None:
            return boxes
        return apply_deltas(boxes, out.box_deltas, self.config.max_shift, self.config.max_scale)

    # --- decisions ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def decide(self, image: Image.Image, question: str) -> Decision:
        """Gate probability and all candidates ranked by score (eval mode, no gradients)."""
        return self._decision(image, question)

    @torch.no_grad()
    def _decision(self, image: Image.Image, question: str, stop_below: float | None = None) -> Decision | None:
        """`decide`; with `stop_below`, None as soon as the gate probability is below it, before any crop is
        scored (a question the view already answers then costs about 0.65x a full query: 20.7 vs 32.0 ms,
        measured in one process on the 2-core CPU)."""
        was_training = self.training
        if was_training:  # .eval() walks every submodule: ~5 ms a query when done needlessly
            self.eval()
        threads = torch.get_num_threads()
        if threads > 1 and self.device.type == "cpu" and _threads_are_per_thread():
            # One query is small tensors: splitting each op over cores costs more than it gains, and
            # torch's idle workers spin on the core the finder and the RoI helper need (measured: 45 ms
            # a query at 2 threads vs 30 at 1).
            torch.set_num_threads(1)
        try:
            result = self._decide(image, question, stop_below)
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            if was_training:
                self.train()
        if result is None:
            return None
        gate, scores, boxes, found = result
        order = torch.argsort(scores, descending=True).tolist()
        names = self.candidate_names + [f"found_{i}" for i in range(found)]
        score_list, box_list = scores.tolist(), boxes.tolist()  # one conversion each, not one per candidate
        return Decision(gate=gate, names=[names[i] for i in order],
                        scores=[score_list[i] for i in order],
                        boxes=Box.many_from_lists([box_list[i] for i in order]))

    def _decide(self, image: Image.Image, question: str,
                stop_below: float | None) -> tuple[float, torch.Tensor, torch.Tensor, int] | None:
        """The gate probability, every candidate's score [C] and (refined) box [C, 4] on the CPU (the fixed
        candidates first), and how many were found in the image; None when the gate is below `stop_below`."""
        dtype = self.heads.score.weight.dtype  # float32 unless the caller converted the policy
        spare_core = self.device.type != "cpu" or (os.cpu_count() or 1) > 1
        # The walk over the weights that tells the ONNX graph whether they changed (~0.5 ms) runs on the
        # other core while this one resizes the image, which leaves that core idle.
        weights = (_finder_pool().submit(OnnxImageSide.weights, self)
                   if spare_core and self.device.type == "cpu" and dtype == torch.float32 and onnx_enabled() else None)
        view = self.view(image)
        # The finder (OpenCV, GIL released) runs on the other core while the network's image half runs
        # here: on a 2-core CPU that hides its ~10 ms. (Scoring the fixed candidates while the finder
        # finishes, and the found ones after, measured no faster: three threads on two cores.)
        found = _finder_pool().submit(self._candidates, view) if spare_core else None
        x = self.preprocess(view)[None].to(self.device, dtype)
        q = self._question_vector(question).to(self.device, dtype)
        maps = self._image_maps(x, q, weights.result() if weights is not None else None)
        if stop_below is not None:  # compared as `propose` compares the decision's gate: a Python float
            gate = torch.sigmoid(self.heads.gate_logit(maps[0], q, maps[1])[0].float()).item()
            if gate < stop_below:
                return None  # the finder's work, already under way, is simply dropped
        prepared = Prepared(x[0], *(found.result() if found is not None else self._candidates(view)))
        inputs = {k: v.to(dtype) if v.is_floating_point() else v
                  for k, v in self.collate([prepared], images=False).items()}
        out = self(images=x, question_emb=q, maps=maps, **inputs)
        gate = torch.sigmoid(out.gate_logit[0].float()).item()
        boxes = self.refined_boxes(out)[0].float().cpu()
        return gate, out.crop_logits[0].float().cpu(), boxes, len(prepared.boxes) - prepared.fixed

    def fingerprint(self) -> str | None:
        """A short id of what this policy answers with: its saved weights and its settings (gate threshold,
        k, ...), or None for a policy not loaded from disk. `compare` keeps it so that a resumed run does
        not mix results from two policies behind one name (`policy` before and after an upgrade)."""
        sha = getattr(self, "weights_sha256", None)
        if sha is None:
            return None
        settings = json.dumps({k: v for k, v in dataclasses.asdict(self.config).items() if k != "extra"},
                              sort_keys=True, default=str)
        return hashlib.sha256(f"{sha}|{settings}".encode()).hexdigest()[:16]

    def propose(self, image: Image.Image, question: str, k: int | None = None, budget: int | None = None,
                threshold: float | None = None, token_model=None, mass: float | None = None) -> list[Box]:
        """The top-`k` crops for `question` (default `config.k`), or [] when the gate says none is needed.

        Crops are taken best first, skipping any that overlaps a chosen one by more than `config.nms_iou`.
        With `mass` (default `config.mass`; pass 0 for exactly `k`), fewer than `k` when the chosen crops
        already hold that share of the softmax over candidates (see `PolicyConfig.mass`).
        `budget` (visual tokens for the crops) applies when a token model is given (here or as
        `self.token_model`): a crop whose cost, at full resolution capped at `self.crop_side`, would take
        the running total over the budget is dropped, except the best crop, which is always kept because
        the view planner shrinks it to fit.
        """
        k = self.config.k if k is None else k
        threshold = self.config.gate_threshold if threshold is None else threshold
        mass = self.config.mass if mass is None else mass
        if k <= 0:
            return []
        decision = self._decision(image, question, stop_below=threshold)
        if decision is None:  # the gate says the view is enough
            return []
        chosen = select_crops(decision, k, self.config.nms_iou, mass, self.config.max_area)
        token_model = token_model if token_model is not None else self.token_model
        if budget is not None and token_model is not None:
            chosen = self._within_budget(image, chosen, budget, token_model)
        return chosen

    def propose_more(self, image: Image.Image, question: str, shown: list[Box], k: int | None = None,
                     budget: int | None = None, token_model=None) -> list[Box]:
        """The next-best crops after `shown`, for a retry when the crops sent did not answer the question.

        The gate is ignored (the model was shown too little, so some crop is needed after all); candidates
        the `shown` crops already hold are skipped; `k`, `config.mass`, `config.max_area` (for the new crops)
        and `budget` apply as in `propose`. Returns [] when nothing is left to look at.
        """
        k = self.config.k if k is None else k
        if k <= 0:
            return []
        decision = self.decide(image, question)
        chosen = more_crops(decision, list(shown), k, self.config.nms_iou, self.config.mass, self.config.max_area)
        token_model = token_model if token_model is not None else self.token_model
        if budget is not None and token_model is not None:
            chosen = self._within_budget(image, chosen, budget, token_model)
        return chosen

    def _within_budget(self, image: Image.Image, boxes: list[Box], budget: int, token_model) -> list[Box]:
        kept, spent = [], 0
        for i, box in enumerate(boxes):
            left, top, right, bottom = box.to_pixels(image.width, image.height)
            w, h = right - left, bottom - top
            if self.crop_side and max(w, h) > self.crop_side:
                scale = self.crop_side / max(w, h)
                w, h = max(1, round(w * scale)), max(1, round(h * scale))
            cost = token_model.count(w, h)
            if i == 0 or spent + cost <= budget:
                kept.append(box)
                spent += cost
        return kept

    # --- saving and loading -------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write `config.json` + `model.safetensors` (float tensors as they are; no pickle anywhere)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.state_dict().items()}
        weights = atomic_write(directory / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
        config = {"format": FORMAT, **dataclasses.asdict(self.config), "weights_sha256": sha256_file(weights)}
        atomic_write(directory / CONFIG_NAME,
                      lambda p: p.write_text(dump_json(config), encoding="utf-8"))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device | None = None,
                        encoder=None, verify: bool = True) -> CropPolicy:
        """Load a directory written by `save_pretrained`, in eval mode, on `device` (default cpu).

        Raises `PolicyLoadError` naming the file when one is missing, unreadable, changed since saving
        (sha256 in `config.json`, unless `verify=False`) or does not fit the configured network.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise PolicyLoadError(f"{path}: missing; a policy directory holds {CONFIG_NAME} and {WEIGHTS_NAME} "
                                      "(written by CropPolicy.save_pretrained)")
        try:
            raw = json.loads(config_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PolicyLoadError(f"{config_path}: not valid JSON ({exc})") from exc
        if isinstance(raw, dict) and raw.get("format") == "cropper-policy/1":
            raise PolicyLoadError(f"{config_path}: saved by an older cropper (format cropper-policy/1, fixed "
                                  "candidates only), whose heads this version no longer has; retrain it with "
                                  "`cropper train`")
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise PolicyLoadError(f"{config_path}: not a cropper policy config (expected \"format\": \"{FORMAT}\")")
        expected_sha = raw.pop("weights_sha256", None)
        raw.pop("format")
        if verify and expected_sha is not None and sha256_file(weights_path) != expected_sha:
            raise PolicyLoadError(f"{weights_path}: contents do not match the sha256 recorded in {CONFIG_NAME} "
                                  "(the file was changed or is corrupt); re-save or re-download the policy")
        raw.setdefault("cues", False)  # saved before question cues existed: the network has none
        known = {f.name for f in dataclasses.fields(PolicyConfig)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise PolicyLoadError(f"{config_path}: unknown config keys {unknown} (saved by a newer cropper?)")
        try:
            config = PolicyConfig(**{**raw, "pretrained": False})  # the weights file has every tensor
        except (TypeError, ValueError) as exc:
            raise PolicyLoadError(f"{config_path}: invalid config ({exc})") from exc
        try:
            state = load_file(str(weights_path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise PolicyLoadError(f"{weights_path}: not a readable safetensors file ({exc})") from exc
        policy = cls(config, encoder=encoder)
        try:
            policy.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise PolicyLoadError(f"{weights_path}: tensors do not fit the network in {CONFIG_NAME} ({exc})") from exc
        policy.weights_sha256 = expected_sha if verify and expected_sha is not None else sha256_file(weights_path)
        return policy.to(device or "cpu").eval()

    @classmethod
    def default(cls, device: str | torch.device | None = None) -> CropPolicy:
        """The policy bundled with the package (`cropper/weights/default_policy/`)."""
        if not (DEFAULT_DIR / CONFIG_NAME).is_file():
            raise FileNotFoundError(
                f"no bundled crop policy at {DEFAULT_DIR}. Train one: `cropper synth --out data --n 2000 --seed 0` "
                "then `cropper train --data data/data.jsonl --backend reader --out my_policy`, and load it with "
                "CropPolicy.from_pretrained('my_policy'); or use a training-free cropper ('text-regions')."
            )
        return cls.from_pretrained(DEFAULT_DIR, device=device)


@functools.cache
def _threads_are_per_thread() -> bool:
    """Whether `torch.set_num_threads` only changes the calling thread's setting: true of the OpenMP
    backend (each thread has its own count), not of the native pool, which every thread shares."""
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


@functools.lru_cache(maxsize=1)
def _finder_pool():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(1, thread_name_prefix=_FINDER)


_FINDER = "cropper-finder"


class PolicyLoadError(ValueError):
    """A policy directory could not be loaded; the message names the file and the problem."""
