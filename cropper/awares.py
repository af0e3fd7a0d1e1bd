"""AwaRes's text protocol for the `tool` strategy: the model asks for crops with `GET_CROPS: [...]`.

The released AwaRes model (`Kimhi/AWARES-Qwen2.5-VL-7B`, a Qwen2.5-VL-7B fine-tune; paper arXiv 2603.16932,
code NimrodShabtay/AwaRes) does not use tool calls. Its evaluation plugin (`lmms_eval/qwen2_5_vl_awares.py`)
runs this conversation, which `protocol="awares"` reproduces:

1. system: `AWARES_SYSTEM_PROMPT` (the plugin's text, its typos included: the model was evaluated with it;
   `AWARES_README_PROMPT`, the repository README's wording, with `prompt="readme"`);
2. user: the low-resolution view (the image resized to half its side, LANCZOS) and the question;
3. if the reply contains `GET_CROPS: [...]` with crop ids '0'-'8' (or 'all'): the reply as an assistant
   turn, then one user turn holding only the requested crops at full resolution (no captions), and the
   model's next reply is the answer. Otherwise the first reply is the answer.

Crop ids: '0' top-left, '1' top-right, '2' bottom-left, '3' bottom-right quadrants, '4' the centre crop of
half width and height, '5'-'8' the top/bottom/left/right halves, 'all' the whole image (cropper's
`AWARES9` boxes). The reply is parsed leniently, like the README's parser (`GET_CROPS : ['0', '5']`,
`GET_CROPS:[3]`, several ids); a request with no valid id falls back to the full image, as the plugin does,
and the Answer's `notes` say why.
"""

from __future__ import annotations

import re
import time

from PIL import Image

from backends.messages import ImagePart, Message, TextPart

from .answer import Answer, add_usage
from .geometry import AWARES9, FULL, Box
from .planning import fit_crop
from .tokens import TokenModel

__all__ = ["AWARES_CROP_IDS", "AWARES_PROMPTS", "AWARES_README_PROMPT", "AWARES_SYSTEM_PROMPT", "parse_get_crops",
           "run_awares", "awares_low_view"]

#: Crop ids of the protocol -> cropper's boxes (the plugin's CROPS_MAP, in its order).
AWARES_CROP_IDS: dict[str, Box] = {
    "0": AWARES9["top_left"], "1": AWARES9["top_right"], "2": AWARES9["bottom_left"], "3": AWARES9["bottom_right"],
    "4": AWARES9["center"], "5": AWARES9["top"], "6": AWARES9["bottom"], "7": AWARES9["left"], "8": AWARES9["right"],
    "all": FULL,
}
_CROPS_MAP = {"0": "top-left", "1": "top-right", "2": "bottom-left", "3": "bottom-right", "4": "center", "5": "top",
              "6": "bottom", "7": "left", "8": "right", "all": "all"}

#: The plugin's system prompt, verbatim: `lmms_eval/qwen2_5_vl_awares.py` of NimrodShabtay/AwaRes (commit
#: 2121cde), the `INDS_NOT_WORDS = True` branch (its default), with the crop map as Python prints it. Note
#: `GET_CROPS [<crop_number>]`: a space, no colon (the plugin's parser takes `GET_CROPS:?[...]`).
AWARES_SYSTEM_PROMPT = (
    "You are a vision-language model that analyzes images and answers questions about them. If the image "
    "resolution is too low for accurate analysis, respond with GET_CROPS [<crop_number>] to get a higher "
    "resolution version, the avalible <crop_numbers> and their corresponding area of the high resolution image "
    f"are {_CROPS_MAP} ,otherwise provide your answer."
)

#: The README's wording of the same prompt (its quick-start `SYSTEM_PROMPT`, whose map has no 'all').
AWARES_README_PROMPT = (
    "You are a vision-language model that analyzes images and answers questions about them. "
    "If the image resolution is too low for accurate analysis, respond with GET_CROPS: "
    "followed by a list of crop numbers in square brackets (e.g., GET_CROPS: ['3'] or "
    "GET_CROPS: ['0', '5']), where the available crop numbers and their corresponding "
    f"areas are { {k: v for k, v in _CROPS_MAP.items() if k != 'all'} }, otherwise provide your answer."
)

#: `prompt=` names for `run_awares` (and `StrategyConfig.awares_prompt`).
AWARES_PROMPTS = {"plugin": AWARES_SYSTEM_PROMPT, "readme": AWARES_README_PROMPT}

_GET_CROPS = re.compile(r"GET_CROPS\s*:?\s*\[([^\]]*)\]", re.I)
_ID = re.compile(r"all|\d+", re.I)


def parse_get_crops(text: str) -> tuple[list[str], str | None] | None:
    """None when the reply asks for no crop; else `(crop ids, problem)`.

    Ids come back in the order asked, without repeats; `problem` names what was wrong (unknown ids, an
    empty list, a `GET_CROPS` without a bracketed list) and is None when every id was valid.
    """
    if "GET_CROPS" not in text.upper():
        return None
    match = _GET_CROPS.search(text)
    if match is None:
        return [], f"'GET_CROPS' without a [list] of crop ids: {text[:80]!r}"
    ids, unknown = [], []
    for token in _ID.findall(match.group(1)):
        token = token.lower()
        if token in AWARES_CROP_IDS:
            if token not in ids:
                ids.append(token)
        else:
            unknown.append(token)
    problem = None
    if unknown:
        problem = f"unknown crop id(s) {unknown}; valid: {list(AWARES_CROP_IDS)}"
    elif not ids:
        problem = f"GET_CROPS asked for no crop id: {match.group(0)!r}"
    return ids, problem


def awares_low_view(image: Image.Image) -> Image.Image:
    """The plugin's low-resolution view: the image at half its width and height (LANCZOS)."""
    return image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.LANCZOS)


def _effective_pixels(token_model: TokenModel, w: int, h: int) -> int:
    ew, eh = token_model.effective_size(w, h)
    return ew * eh


def run_awares(backend, token_model: TokenModel, image: Image.Image, question: str, budget: int | None = None,
               crop_side: int | None = None, prefix: list[Message] | None = None, options: dict | None = None,
               prompt: str = "plugin") -> Answer:
    """One AwaRes conversation (see the module docstring); the visual tokens count every view sent once.

    `prompt`: "plugin" (the evaluation plugin's system prompt, the default) or "readme" (the README's).
    """
    if prompt not in AWARES_PROMPTS:
        raise ValueError(f"unknown AwaRes prompt {prompt!r}; choose one of {', '.join(AWARES_PROMPTS)}")
    started = time.perf_counter()
    options = dict(options or {})
    low = awares_low_view(image)
    messages = [Message("system", [TextPart(AWARES_PROMPTS[prompt])]), *(prefix or []),
                Message("user", [ImagePart(low), TextPart(question)])]
    sizes = [low.size]
    spent = token_model.count(*low.size)
    reply = backend.generate(messages, **options)
    replies, notes, crops = [reply], [], []
    input_tokens, output_tokens = reply.usage.input_tokens, reply.usage.output_tokens
    asked = parse_get_crops(reply.text or "")
    rounds = 0
    if asked is not None:
        ids, problem = asked
        if problem:
            notes.append(f"GET_CROPS: {problem}")
        if not ids:
            ids = ["all"]  # the plugin's fallback: the full image
            notes.append("sent the full image instead")
        views = []
        for crop_id in ids:
            left = None if budget is None else budget - spent
            view = fit_crop(image, AWARES_CROP_IDS[crop_id], token_model, left, crop_side)
            if view is None:
                notes.append(f"crop {crop_id!r} skipped: the visual-token budget is spent")
                continue
            views.append(view)
            crops.append(view.box)
            sizes.append(view.size)
            spent += token_model.count(*view.size)
        if views:
            rounds = 1
            messages += [Message("assistant", [TextPart(reply.text)]),
                         Message("user", [ImagePart(v.image) for v in views])]
            reply = backend.generate(messages, **options)
            replies.append(reply)
            input_tokens = add_usage(input_tokens, reply.usage.input_tokens)
            output_tokens = add_usage(output_tokens, reply.usage.output_tokens)
    pixels = sum(_effective_pixels(token_model, w, h) for w, h in sizes)
    return Answer(text=(reply.text or "").strip(), strategy="tool", crops=crops, visual_tokens=spent, pixels=pixels,
                  latency_s=time.perf_counter() - started, rounds=rounds, view_sizes=sizes, input_tokens=input_tokens,
                  output_tokens=output_tokens, replies=replies, notes=notes)
