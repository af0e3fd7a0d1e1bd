"""The request-body validators of provider_schemas, against the providers' official schemas."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("jsonschema")

from provider_schemas import (  # noqa: E402
    OPENAI_ROOT_SCHEMAS,
    anthropic_beta_schema_errors,
    anthropic_schema_errors,
    openai_chat_schema_errors,
    openai_document,
    openai_responses_schema_errors,
)

PNG_URL = "data:image/png;base64,AAAA"
BIG_B64 = "A" * (10 * 1024 * 1024)  # a 10 MB base64 payload


def chat(**extra):
    return {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}], **extra}


def claude(**extra):
    return {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **extra}


def has(errors: list[str], *parts: str) -> bool:
    return any(all(p in e for p in parts) for e in errors)


# ---------------------------------------------------------------- the stored OpenAI subset


def test_subset_records_its_source_and_is_self_contained():
    doc = openai_document()
    src = doc["x-source"]
    assert src["repository"] == "https://github.com/openai/openai-openapi"
    assert src["license"] == "MIT" and "Permission is hereby granted" in src["license_text"]
    assert len(src["commit"]) == 40 and src["path"] == "openapi.yaml"
    schemas = doc["components"]["schemas"]
    assert set(OPENAI_ROOT_SCHEMAS) <= set(schemas)
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    refs.add(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schemas)
    assert refs and all(r.startswith("#/components/schemas/") for r in refs)
    assert {r.rsplit("/", 1)[1] for r in refs} <= set(schemas)


# ---------------------------------------------------------------- OpenAI chat completions


def test_chat_minimal_and_full_bodies_pass():
    assert openai_chat_schema_errors(chat()) == []
    body = chat(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in the crop?"},
                {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "high"}},
            ]},
        ],
        max_completion_tokens=None,  # `nullable: true` in the spec: null must pass
        temperature=0,
        stop=None,
        tool_choice="auto",
        tools=[{"type": "function", "function": {"name": "crop", "parameters": {"type": "object"}}}],
    )
    assert openai_chat_schema_errors(body) == []


def test_chat_invalid_role():
    errors = openai_chat_schema_errors(chat(messages=[{"role": "bogus", "content": "x"}]))
    assert has(errors, "messages/0", "role='bogus'", "'user'", "'tool'")


def test_chat_messages_missing():
    assert openai_chat_schema_errors({"model": "gpt-4.1"}) == ["<body>: 'messages' is a required property"]


def test_chat_image_part_without_url():
    body = chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"detail": "low"}}]}])
    assert openai_chat_schema_errors(body) == ["messages/0/content/0/image_url: 'url' is a required property"]


def test_chat_bogus_tool_choice():
    errors = openai_chat_schema_errors(chat(tool_choice="bogus"))
    assert has(errors, "tool_choice", "'bogus' is not one of ['none', 'auto', 'required']")


def test_chat_wrong_types_and_unknown_part_type():
    assert has(openai_chat_schema_errors(chat(n="2")), "n: matches none of", "is not of type 'integer'")
    errors = openai_chat_schema_errors(chat(messages=[{"role": "user", "content": [{"type": "bogus"}]}]))
    assert has(errors, "messages/0/content/0", "type='bogus'", "'image_url'")


def test_chat_tool_messages_carry_text_parts_only():
    # ChatCompletionRequestToolMessageContentPart is oneOf [ChatCompletionRequestMessageContentPartText]
    tool_turns = [
        {"role": "user", "content": "look"},
        {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "crop", "arguments": "{}"}}]},
    ]
    text = chat(messages=[*tool_turns, {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "ok"}]}])
    assert openai_chat_schema_errors(text) == []
    image = chat(messages=[*tool_turns, {"role": "tool", "tool_call_id": "c1",
                                         "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]}])
    assert has(openai_chat_schema_errors(image), "messages/2/content/0", "type='image_url'", "['text']")


def test_chat_spec_does_not_tie_parallel_tool_calls_to_tools():
    # The schema has no dependency between the two (the live API is stricter); documents the spec.
    assert openai_chat_schema_errors(chat(parallel_tool_calls=False)) == []
    assert has(openai_chat_schema_errors(chat(parallel_tool_calls="no")), "parallel_tool_calls", "'boolean'")


# ---------------------------------------------------------------- OpenAI Responses


def responses_body(image_part: dict) -> dict:
    return {"model": "gpt-4.1", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}, image_part]}]}


def test_responses_minimal_body_passes():
    assert openai_responses_schema_errors({"model": "gpt-4.1", "input": "hi"}) == []
    body = responses_body({"type": "input_image", "image_url": PNG_URL, "detail": "auto"})
    assert openai_responses_schema_errors(body) == []


def test_responses_input_image_in_a_message_requires_detail():
    # InputImageContent: "required": ["type", "detail"] (although its description says
    # "Defaults to `auto`"); the SDK's ResponseInputImageParam has detail: Required[...] too.
    errors = openai_responses_schema_errors(responses_body({"type": "input_image", "image_url": PNG_URL}))
    assert has(errors, "input/0/content/1", "'detail' is a required property")


def test_responses_invalid_item_and_part_types():
    errors = openai_responses_schema_errors({"model": "gpt-4.1", "input": [{"type": "bogus_item"}]})
    assert has(errors, "input/0", "type='bogus_item'", "'function_call_output'", "'item_reference'")
    errors = openai_responses_schema_errors(responses_body({"type": "input_bogus", "text": "hi"}))
    assert has(errors, "input/0/content/1", "type='input_bogus'", "'input_image'")


def test_responses_recursive_filters_are_checked():
    def tool(inner):
        return {"model": "gpt-4.1", "input": "hi", "tools": [{"type": "file_search", "vector_store_ids": ["vs"],
                                                                 "filters": {"type": "and", "filters": [inner]}}]}

    good = {"type": "or", "filters": [{"type": "eq", "key": "k", "value": 1}]}
    assert openai_responses_schema_errors(tool(good)) == []
    bad = {"type": "or", "filters": [{"type": "eq", "key": "k"}]}  # no value, two levels down
    assert openai_responses_schema_errors(tool(bad)) != []


# ---------------------------------------------------------------- big bodies


def test_ten_megabyte_bodies_validate_fast_with_short_messages():
    chat_body = chat(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + BIG_B64, "detail": "bogus"}}]}])
    resp_body = responses_body({"type": "input_image", "image_url": "data:image/png;base64," + BIG_B64})
    claude_body = claude(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": BIG_B64}}]}])
    for check, body in ((openai_chat_schema_errors, chat_body), (openai_responses_schema_errors, resp_body),
                        (anthropic_schema_errors, claude_body)):
        check(body)  # warm the cached validator
        start = time.perf_counter()
        errors = check(body)
        assert time.perf_counter() - start < 0.5
        assert errors and sum(map(len, errors)) < 5000


def test_long_strings_keep_their_length_for_max_length():
    # InputImageContentParamAutoParam.image_url has "maxLength": 20971520
    def body(n):
        return {"model": "gpt-4.1", "input": [{"type": "function_call_output", "call_id": "c1", "output": [
            {"type": "input_image", "image_url": "data:image/png;base64," + "A" * n}]}]}

    assert openai_responses_schema_errors(body(1000)) == []
    assert has(openai_responses_schema_errors(body(20971520)), "input/0/output/0/image_url", "is too long")


# ---------------------------------------------------------------- Anthropic Messages


def test_anthropic_valid_body_with_every_block_kind():
    body = claude(
        system="Answer from the crops.",
        tool_choice={"type": "none"},
        tools=[{"name": "crop", "description": "zoom", "input_schema": {"type": "object", "properties": {}}}],
        messages=[
            {"role": "user", "content": [
                {"type": "text", "text": "what is written here?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "zoom in first", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "crop", "input": {"box": [0, 0, 1, 1]}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}},
                    {"type": "text", "text": "the crop"}]},
            ]},
        ],
    )
    assert anthropic_schema_errors(body) == []
    assert anthropic_schema_errors({**body, "stream": True}) == []


def test_anthropic_unknown_top_level_key():
    assert anthropic_schema_errors(claude(foo=1)) == ["foo: Extra inputs are not permitted"]


def test_anthropic_image_without_source():
    body = claude(messages=[{"role": "user", "content": [{"type": "image"}]}])
    assert anthropic_schema_errors(body) == ["messages.0.content.0.source: Field required"]


def test_anthropic_max_tokens_missing():
    body = claude()
    del body["max_tokens"]
    assert anthropic_schema_errors(body) == ["max_tokens: Field required"]


def test_anthropic_system_role_in_messages():
    body = claude(messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    assert has(anthropic_schema_errors(body), "messages.0.role", "'system'")
    # ...which the installed SDK's MessageParam itself accepts (mid-conversation system messages).
    assert anthropic_schema_errors(body, allow_system_messages=True) == []


def test_anthropic_block_level_mistakes_inside_lazy_iterables():
    # messages/content are Iterable[...] in the SDK, which pydantic only checks when iterated.
    body = claude(foo=1, messages=[{"role": "user", "content": [
        {"type": "bogus"},
        {"type": "text", "text": "hi", "cache": True},
        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AAAA"}},
    ]}])
    errors = anthropic_schema_errors(body)
    assert "foo: Extra inputs are not permitted" in errors
    assert has(errors, "messages.0.content.0", "matches none", "'image'", "'text'")
    assert has(errors, "messages.0.content.1", "'cache'")
    assert has(errors, "messages.0.content.2.source.media_type", "'image/png'")
    assert not has(errors, "messages.0.content.2", "TextBlockParam")


def test_anthropic_strict_types_and_tool_choice():
    assert has(anthropic_schema_errors(claude(max_tokens="64")), "max_tokens", "integer")
    assert has(anthropic_schema_errors(claude(tool_choice={"type": "bogus"})), "tool_choice", "matches none")
    assert has(anthropic_schema_errors(claude(stream=True, foo=1)), "foo", "Extra inputs")


def test_anthropic_beta_and_header_only_params():
    assert anthropic_beta_schema_errors(claude()) == []
    assert anthropic_beta_schema_errors(claude(foo=1)) == ["foo: Extra inputs are not permitted"]
    errors = anthropic_beta_schema_errors(claude(betas=["files-api-2025-04-14"]))
    assert has(errors, "betas", "anthropic-beta", "header")


def test_anthropic_body_survives_json_round_trip():
    body = claude(messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    assert anthropic_schema_errors(json.loads(json.dumps(body))) == []
