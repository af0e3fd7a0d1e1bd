"""The parts of `CropPolicy` after the backbone: neck, question fusion, gate / crop heads, box coding.

Shapes: B images, C candidate crops (per image: the fixed ones, then those found in it, padded to the
batch's most), D = `dim` channels, an H x W fused feature map (stride 16 of the low-res view), Q = 384
question dims (plus `CUE_DIM` parsed cues with `cues`), K colour names. Boxes are normalized
`[x1, y1, x2, y2]`; the backbone sees the view resized to a square, so a normalized box maps to the same
fraction of every map.
"""

from __future__ import annotations

import functools
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from .question_cues import CUE_DIM, N_CUE_FEATURES, cue_features


class Neck(nn.Module):
    """FPN-lite: 1x1 projections of the backbone's last levels, coarse upsampled and added to the finest."""

    def __init__(self, in_channels: list[int], dim: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in in_channels)
        self.smooth = _conv_block(dim)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[-2:]
        out = self.lateral[0](features[0])
        for lateral, feat in zip(self.lateral[1:], features[1:], strict=True):
            f = lateral(feat)
            out = out + (f if f.shape[-2:] == size else F.interpolate(f, size=size, mode="nearest"))
        return self.smooth(out)


class FiLMFusion(nn.Module):
    """Question -> per-channel scale and shift of the feature map (starts as the identity)."""

    def __init__(self, dim: int, text_dim: int, hidden: int):
        super().__init__()
        self.film = nn.Sequential(nn.Linear(text_dim, hidden), nn.GELU(), nn.Linear(hidden, 2 * dim))
        nn.init.zeros_(self.film[-1].weight)
        nn.init.zeros_(self.film[-1].bias)
        self.mix = _conv_block(dim)

    def forward(self, fmap: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(q)[:, :, None, None].chunk(2, dim=1)
        return self.mix(fmap * (1 + gamma) + beta)


class CrossAttentionFusion(nn.Module):
    """The question attends over the feature map (`queries` query tokens made from the embedding).

    The attended context and the question set a FiLM scale/shift, and the attention maps themselves are
    added back as a spatial signal (where the question looked), so each location knows its relevance.
    """

    def __init__(self, dim: int, text_dim: int, hidden: int, queries: int = 4, heads: int = 4):
        super().__init__()
        self.queries, self.dim = queries, dim
        self.to_queries = nn.Linear(text_dim, queries * dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.film = nn.Sequential(nn.Linear(text_dim + dim, hidden), nn.GELU(), nn.Linear(hidden, 2 * dim))
        nn.init.zeros_(self.film[-1].weight)
        nn.init.zeros_(self.film[-1].bias)
        self.from_maps = nn.Conv2d(queries, dim, 1)
        self.mix = _conv_block(dim)

    def forward(self, fmap: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        b, d, h, w = fmap.shape
        tokens = fmap.flatten(2).transpose(1, 2)  # B, HW, D
        keys = tokens + _sincos_2d(h, w, d, fmap.device, fmap.dtype)
        query = self.to_queries(q).view(b, self.queries, d)
        ctx, maps = self.attn(query, keys, tokens, need_weights=True, average_attn_weights=True)  # maps B, m, HW
        gamma, beta = self.film(torch.cat([q, ctx.mean(1)], dim=-1))[:, :, None, None].chunk(2, dim=1)
        spatial = self.from_maps(maps.view(b, self.queries, h, w) * (h * w))  # x HW: uniform attention -> 1
        return self.mix(fmap * (1 + gamma) + beta + spatial)


FUSIONS = {"film": FiLMFusion, "xattn": CrossAttentionFusion}


class FineCues(nn.Module):
    """A shallow question-modulated map at stride 4 of the view.

    A 120-px sign in a 4000-px scene is 10 px wide in a 320-px view: one cell of the backbone's stride-16
    map, its colour averaged with the background. Two strided convs keep it at stride 4, and the question
    scales and shifts the channels (so "the green sign" can become "where it is green"). Nearly linear,
    so it learns from a few epochs of data where a randomly initialised backbone alone does not.
    """

    def __init__(self, dim: int, text_dim: int, hidden: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dim, 3, stride=2, padding=1), nn.GELU(),
                                  nn.Conv2d(dim, dim, 3, stride=2, padding=1), nn.GELU())
        self.film = nn.Sequential(nn.Linear(text_dim, hidden), nn.GELU(), nn.Linear(hidden, 2 * dim))
        nn.init.zeros_(self.film[-1].weight)
        nn.init.zeros_(self.film[-1].bias)
        self.mix = nn.Conv2d(dim, dim, 1)

    def forward(self, images: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        f = self.stem(images)
        gamma, beta = self.film(q)[:, :, None, None].chunk(2, dim=1)
        return F.gelu(self.mix(f * (1 + gamma) + beta))  # B, dim, S/4, S/4


class CropHeads(nn.Module):
    """Gate logit, one score per candidate crop, and optional tanh-bounded box deltas per candidate.

    Each candidate is described by RoI pooling (average and max) of the fused map, of the fine cue map
    and of the colour-name map over its box, by its geometry and whether the image proposed it; the
    question multiplies the pooled features (does this region look like what was asked?), and the colour
    shares meet a question-predicted colour ("the green sign" -> the green share) directly. With `cues`,
    the question vector ends with `question_cues` and each candidate also gets its exact matches to the
    colour and quadrant the question names (`cue_features`).
    """

    def __init__(self, dim: int, text_dim: int, hidden: int, refine: bool = True, fine_dim: int = 0,
                 colours: int = 0, cues: bool = False):
        super().__init__()
        self.cues = cues  # the question vector ends with `question_cues` (colour / quadrant named)
        self.q_proj = nn.Linear(text_dim, dim)
        self.q_colour = nn.Linear(text_dim, colours) if colours else None
        self.gate = nn.Sequential(nn.Linear(3 * dim + fine_dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.geometry = nn.Linear(6, dim)
        width = 6 * dim + 2 * fine_dim + 4 * colours + (N_CUE_FEATURES if cues else 0)
        self.trunk = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.score = nn.Linear(hidden, 1)
        self.deltas = nn.Linear(hidden, 4) if refine else None
        if self.deltas is not None:  # start with the candidate boxes unchanged
            nn.init.zeros_(self.deltas.weight)
            nn.init.zeros_(self.deltas.bias)

    def gate_logit(self, fmap: torch.Tensor, q: torch.Tensor, fine: torch.Tensor | None = None) -> torch.Tensor:
        """[B]: the gate alone, exactly as `forward` computes it (it needs no candidates), so a caller can
        stop before scoring any crop when the gate says none is needed."""
        gate_in = self._gate_inputs(fmap.flatten(2), self.q_proj(q), fine)
        return self.gate(torch.cat(gate_in, dim=-1)).squeeze(-1)

    @staticmethod
    def _gate_inputs(flat: torch.Tensor, qv: torch.Tensor, fine: torch.Tensor | None) -> list[torch.Tensor]:
        """The whole map's mean and max, the projected question, and the fine map's max when there is one."""
        parts = [flat.mean(-1), flat.amax(-1), qv]
        return parts if fine is None else [*parts, fine.flatten(2).amax(-1)]

    def forward(self, fmap: torch.Tensor, q: torch.Tensor, boxes: torch.Tensor, proposed: torch.Tensor,
                fine: torch.Tensor | None = None, colours: torch.Tensor | None = None):
        """`boxes` [B, C, 4] normalized, `proposed` [B, C] (1 for a box found in the image) ->
        gate [B], scores [B, C], deltas [B, C, 4] or None."""
        # The fine map and the colour map share a grid (stride 4): one RoI pass over both.
        maps = [m.to(fmap.dtype) for m in (fine, colours if self.q_colour is not None else None) if m is not None]
        fine_map = (torch.cat(maps, 1) if len(maps) > 1 else maps[0]) if maps else None
        # Inference on a CPU with a core to spare: the fine map's RoI pass (its max is half of these
        # heads' time) runs there while this thread pools the fused map and does the rest.
        pending = None
        if fine_map is not None and _beside(fmap):
            pending = _helper().submit(roi_mean_max, fine_map, boxes, False)
        qv = self.q_proj(q)  # B, D
        flat = fmap.flatten(2)  # B, D, HW
        gate_in = self._gate_inputs(flat, qv, fine)
        region, peak = roi_mean_max(fmap, boxes)  # B, C, D each
        geom = self.geometry(torch.cat([box_features(boxes), proposed[..., None]], -1).to(fmap.dtype))
        ctx = flat.mean(-1)[:, None, :].expand_as(region)
        q_row = qv[:, None, :]
        parts = [region, region * q_row, peak, peak * q_row, geom, ctx]
        share = densest = None
        if fine_map is not None:
            mean, peak_fine = pending.result() if pending is not None else roi_mean_max(fine_map, boxes)
            n_fine = fine.shape[1] if fine is not None else 0
            if fine is not None:
                parts += [mean[..., :n_fine], peak_fine[..., :n_fine]]
            if self.q_colour is not None and colours is not None:
                share, densest = mean[..., n_fine:], peak_fine[..., n_fine:]  # B, C, K colour names
                wanted = self.q_colour(q)[:, None, :]
                parts += [share, densest, share * wanted, densest * wanted]
        if self.cues:  # exact matches of the parsed colour / quadrant, which the embedding blurs
            parts.append(cue_features(q[:, -CUE_DIM:], boxes.to(fmap.dtype), share, densest))
        gate = self.gate(torch.cat(gate_in, dim=-1)).squeeze(-1)
        z = self.trunk(torch.cat(parts, dim=-1))
        scores = self.score(z).squeeze(-1)
        deltas = torch.tanh(self.deltas(z)) if self.deltas is not None else None
        return gate, scores, deltas


def roi_mean_max(fmap: torch.Tensor, boxes: torch.Tensor, split: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """RoI average and RoI max of `fmap` [B, D, H, W] over each of `boxes` [B, C, 4] -> two [B, C, D].

    The average is RoIAlign (2x2 bins, bilinear, so a box smaller than a cell still reads its cell); the
    max is RoIPool over the cells the box touches (a small sign fills a sliver of a large candidate:
    the average dilutes it away, the max keeps it). `split=False` keeps a large max on this thread (the
    caller already is the helper thread).
    """
    from torchvision.ops import roi_align, roi_pool

    b, c = boxes.shape[:2]
    h, w = fmap.shape[-2:]
    scale = torch.tensor([w, h, w, h], dtype=fmap.dtype, device=fmap.device)
    index = torch.arange(b, device=fmap.device, dtype=fmap.dtype).repeat_interleave(c)[:, None]
    rois = torch.cat([index, boxes.reshape(-1, 4).to(fmap.dtype) * scale], dim=1)  # B*C, 5 in cells
    mean = roi_align(fmap, rois, output_size=2, spatial_scale=1.0, sampling_ratio=2, aligned=True).mean((-1, -2))
    # roi_pool rounds the box to whole cells (at least one), which is what a max over cells wants.
    peak = (_roi_max(fmap, rois) if split else roi_pool(fmap, rois, output_size=1, spatial_scale=1.0)).flatten(1)
    return mean.view(b, c, -1), peak.view(b, c, -1)


#: Below this many RoIs one thread is quicker than handing half of them to another.
_SPLIT_ROIS = 512


def _roi_max(fmap: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """`roi_pool(fmap, rois, 1)`, on a CPU with a core to spare split in two halves run side by side.

    torchvision's CPU RoIPool runs on one thread and was a quarter of a training step (batches of 16
    images with ~130 candidates each). Each row is computed alone, so the output is identical; the
    gradient reaches `fmap` as two sums instead of one (equal up to float rounding).
    """
    from torchvision.ops import roi_pool

    if fmap.device.type != "cpu" or rois.shape[0] < _SPLIT_ROIS or (os.cpu_count() or 1) < 2:
        return roi_pool(fmap, rois, output_size=1, spatial_scale=1.0)
    first, second = rois.chunk(2)
    grad = torch.is_grad_enabled()  # grad mode is per thread: the helper must record what this one would

    def pool(part: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(grad):
            return roi_pool(fmap, part, output_size=1, spatial_scale=1.0)

    other = _helper().submit(pool, second)
    return torch.cat([pool(first), other.result()])


def _beside(fmap: torch.Tensor) -> bool:
    """Whether work on `fmap` may go to the helper thread: CPU inference (grad mode is per thread, so
    the helper must not be asked to record a graph) with more than one core."""
    return fmap.device.type == "cpu" and not torch.is_grad_enabled() and (os.cpu_count() or 1) > 1


@functools.cache
def _helper():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(1, thread_name_prefix="cropper-roi")


def box_features(boxes: torch.Tensor) -> torch.Tensor:
    """[..., 5]: the box corners and its log area, the geometry a candidate's score may depend on."""
    area = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])).clamp_min(1e-4)
    return torch.cat([boxes.float(), area.log()[..., None] / 5], dim=-1)


def apply_deltas(boxes: torch.Tensor, deltas: torch.Tensor, max_shift: float, max_scale: float) -> torch.Tensor:
    """Refined boxes from deltas in [-1, 1]: `(dx, dy)` move the centre by up to `max_shift` of the box's
    width/height, `(dw, dh)` scale each side by `max_scale ** d`. Clamped to the image. Any leading dims."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    dx, dy, dw, dh = deltas.unbind(-1)
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2 + dx * max_shift * w, (y1 + y2) / 2 + dy * max_shift * h
    w, h = w * max_scale ** dw, h * max_scale ** dh
    out = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    return out.clamp(0.0, 1.0)


def encode_deltas(boxes: torch.Tensor, targets: torch.Tensor, max_shift: float, max_scale: float) -> torch.Tensor:
    """The deltas (clipped to [-1, 1]) that move `boxes` closest to `targets`: the regression target for SFT."""
    bw, bh = (boxes[..., 2] - boxes[..., 0]).clamp_min(1e-6), (boxes[..., 3] - boxes[..., 1]).clamp_min(1e-6)
    tw, th = (targets[..., 2] - targets[..., 0]).clamp_min(1e-6), (targets[..., 3] - targets[..., 1]).clamp_min(1e-6)
    dx = ((targets[..., 0] + targets[..., 2]) - (boxes[..., 0] + boxes[..., 2])) / 2 / (max_shift * bw)
    dy = ((targets[..., 1] + targets[..., 3]) - (boxes[..., 1] + boxes[..., 3])) / 2 / (max_shift * bh)
    dw = torch.log(tw / bw) / math.log(max_scale)
    dh = torch.log(th / bh) / math.log(max_scale)
    return torch.stack([dx, dy, dw, dh], dim=-1).clamp(-1.0, 1.0)


def _conv_block(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.GroupNorm(min(8, dim), dim), nn.GELU())


def _sincos_2d(h: int, w: int, dim: int, device, dtype) -> torch.Tensor:
    """[H*W, dim] fixed 2-D sine/cosine position code (half the channels for y, half for x)."""
    quarter = max(1, dim // 4)
    freqs = 1.0 / (100.0 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter))
    ys = torch.arange(h, device=device, dtype=torch.float32)[:, None] / max(1, h) * 2 * math.pi * freqs
    xs = torch.arange(w, device=device, dtype=torch.float32)[:, None] / max(1, w) * 2 * math.pi * freqs
    ycode = torch.cat([ys.sin(), ys.cos()], -1)[:, None, :].expand(h, w, -1)
    xcode = torch.cat([xs.sin(), xs.cos()], -1)[None, :, :].expand(h, w, -1)
    code = torch.cat([ycode, xcode], -1).reshape(h * w, -1)
    if code.shape[1] < dim:
        code = F.pad(code, (0, dim - code.shape[1]))
    return code[:, :dim].to(dtype)
