"""The chat template a tool-trained Qwen-VL checkpoint is saved with, and the response parser TRL needs.

Stock Qwen2.5-VL's template knows text and images only: it ignores `tools` and drops `tool_calls`. For GRPO
with tools (TRL renders the tools and parses the model's `<tool_call>` blocks) and for the checkpoint we
save, the processor gets `QWEN_VL_TOOL_TEMPLATE`: Qwen2.5's Hermes tools block in the system prompt,
assistant `tool_calls` as `<tool_call>` JSON, runs of role "tool" messages as one user turn of
`<tool_response>` blocks, and image placeholders for images in any role (tool results carry crops). It
renders byte for byte what `backends.hf_wire` writes in its Hermes mode, so SFT data rendered either way
is the same text, and the saved checkpoint runs under `ZoomWrapper(strategy="tool")` in native mode.
"""

from __future__ import annotations

from typing import Any

__all__ = ["QWEN_VL_TOOL_TEMPLATE", "prepare_for_tools"]

QWEN_VL_TOOL_TEMPLATE = r"""
{%- macro render(content) -%}
  {%- if content is string -%}{{ content }}
  {%- else -%}
    {%- for item in content -%}
      {%- if item.type == 'image' or 'image' in item or 'image_url' in item -%}<|vision_start|><|image_pad|><|vision_end|>
      {%- elif item.type == 'video' or 'video' in item -%}<|vision_start|><|video_pad|><|vision_end|>
      {%- elif 'text' in item -%}{{ item.text }}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
{%- endmacro -%}
{%- if tools -%}
  {{- '<|im_start|>system\n' -}}
  {%- if messages[0].role == 'system' -%}{{- render(messages[0].content) + '\n\n' -}}
  {%- else -%}{{- 'You are a helpful assistant.\n\n' -}}
  {%- endif -%}
  {{- '# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>' -}}
  {%- for tool in tools -%}{{- '\n' + (tool | tojson) -}}{%- endfor -%}
  {{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' -}}
{%- elif messages[0].role == 'system' -%}
  {{- '<|im_start|>system\n' + render(messages[0].content) + '<|im_end|>\n' -}}
{%- else -%}
  {{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
  {%- if message.role == 'system' and loop.first -%}
  {%- elif message.role == 'tool' -%}
    {%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}
    {{- '\n<tool_response>\n' + render(message.content) + '\n</tool_response>' -}}
    {%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}{{- '<|im_end|>\n' -}}{%- endif -%}
  {%- else -%}
    {{- '<|im_start|>' + message.role + '\n' + render(message.content) -}}
    {%- for call in message.tool_calls or [] -%}
      {%- set fn = call.function if call.function is defined else call -%}
      {%- if message.content or not loop.first -%}{{- '\n' -}}{%- endif -%}
      {{- '<tool_call>\n{"name": "' + fn.name + '", "arguments": ' -}}
      {{- fn.arguments if fn.arguments is string else fn.arguments | tojson -}}
      {{- '}\n</tool_call>' -}}
    {%- endfor -%}
    {{- '<|im_end|>\n' -}}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"""


def prepare_for_tools(processor: Any) -> Any:
    """Give `processor` a tool-aware template (when its own cannot render tools) and TRL's Hermes parser."""
    from backends.hf_wire import template_handles_tools

    def render(conversation, tools=None):
        return processor.apply_chat_template(conversation, tools=tools, tokenize=False)

    try:
        handles = processor.chat_template is not None and template_handles_tools(render)
    except Exception:  # a template that fails on the probe cannot handle tools either
        handles = False
    if not handles:
        processor.chat_template = QWEN_VL_TOOL_TEMPLATE
        if getattr(processor, "tokenizer", None) is not None:
            processor.tokenizer.chat_template = QWEN_VL_TOOL_TEMPLATE
    tokenizer = getattr(processor, "tokenizer", processor)
    if getattr(tokenizer, "response_template", None) is None and getattr(tokenizer, "response_schema", None) is None:
        from trl.chat_template_utils import qwen3_template  # the Hermes <tool_call> parser of the Qwen family

        tokenizer.response_template = qwen3_template
    return processor
