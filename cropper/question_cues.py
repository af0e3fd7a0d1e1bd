"""Question cues: the colour and the quadrant a question names, as a small vector beside its embedding.

A sentence embedding holds "the green sign" and "the grey sign" a hair apart, and a policy trained on a
few thousand items does not learn to pull the colour word back out of it: measured on a held-out synthetic
set, the bundled policy without cues ranked first, for several questions about one image, the same sign
whatever colour they asked for. The reader's question parser (`backends.reader.questions`) reads both
words exactly, so the policy gets them as features and only has to learn what to do with them.

Layout (`CUE_DIM` values): a one-hot of the colour name (`PALETTE` order, all zero when none is named),
then a one-hot of the quadrant (`QUADRANTS` order, all zero when none is named). Questions the parser
does not recognise get zeros, so a policy for another domain simply learns to ignore the cues.
"""

from __future__ import annotations

import functools

import torch

from backends.reader.colours import PALETTE

COLOURS = list(PALETTE)
#: The quadrants as normalized boxes, in the order of the cue vector's last four values.
QUADRANTS = ((0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 1.0, 0.5), (0.0, 0.5, 0.5, 1.0), (0.5, 0.5, 1.0, 1.0))
CUE_DIM = len(COLOURS) + len(QUADRANTS)


@functools.lru_cache(maxsize=4096)
def _cues(question: str) -> tuple[float, ...]:
    from backends.reader.questions import parse_question

    query = parse_question(question)
    out = [0.0] * CUE_DIM
    if query.colour in COLOURS:
        out[COLOURS.index(query.colour)] = 1.0
    if query.position in QUADRANTS:
        out[len(COLOURS) + QUADRANTS.index(query.position)] = 1.0
    return tuple(out)


def question_cues(questions: list[str] | str) -> torch.Tensor:
    """[n, CUE_DIM] float32 cue vectors (see the module docstring), cached per question string."""
    if isinstance(questions, str):
        questions = [questions]
    return torch.tensor([_cues(q) for q in questions], dtype=torch.float32).view(len(questions), CUE_DIM)


def cue_features(cues: torch.Tensor, boxes: torch.Tensor, colour_share: torch.Tensor | None,
                 colour_peak: torch.Tensor | None) -> torch.Tensor:
    """[B, C, 5] per-candidate matches: the named colour's mean and peak share in the box, whether a colour
    was named, whether the box's centre lies in the named quadrant, whether a quadrant was named.

    `cues` [B, CUE_DIM], `boxes` [B, C, 4] normalized, `colour_share` / `colour_peak` [B, C, K] the
    candidates' RoI mean / max of the colour-name map (None: the policy has no colour map; zeros then).
    """
    k = len(COLOURS)
    colour, quadrant = cues[:, None, :k], cues[:, None, k:]  # B, 1, K and B, 1, 4
    if colour_share is not None and colour_peak is not None:
        share = (colour_share * colour).sum(-1)
        peak = (colour_peak * colour).sum(-1)
    else:
        share = peak = boxes.new_zeros(boxes.shape[:2])
    cx, cy = (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2  # B, C
    q = boxes.new_tensor(QUADRANTS)  # 4, 4
    inside = ((cx[..., None] >= q[:, 0]) & (cx[..., None] <= q[:, 2])
              & (cy[..., None] >= q[:, 1]) & (cy[..., None] <= q[:, 3])).to(boxes.dtype)  # B, C, 4
    in_named = (inside * quadrant).sum(-1)
    named_colour = colour.sum(-1).expand_as(share)
    named_quadrant = quadrant.sum(-1).expand_as(share)
    return torch.stack([share, peak, named_colour, in_named, named_quadrant], dim=-1)


N_CUE_FEATURES = 5
