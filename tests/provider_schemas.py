"""Test-only validators of request bodies against the providers' *official* schemas.

* OpenAI: ``tests/schemas/openai_openapi_subset.json`` is a verbatim subset of the OpenAPI
  document in https://github.com/openai/openai-openapi (MIT; see the file's ``x-source``).
  Bodies are checked with ``jsonschema`` (OpenAPI 3.1 schemas are JSON Schema 2020-12).
* Anthropic: bodies are checked against the installed SDK's own request ``TypedDict``s
  (``anthropic.types.message_create_params`` and the beta twin) with a pydantic
  ``TypeAdapter`` that forbids unknown keys.

Every ``*_schema_errors`` function takes the JSON body as it goes on the wire and returns
human-readable ``"path: message"`` strings, an empty list when the body is valid.

Regenerate the OpenAI subset with
``python tests/provider_schemas.py regenerate-openai PATH/TO/openapi.yaml --commit SHA``
(see ``tests/schemas/README.md``).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import pathlib
import sys
import warnings
from collections import defaultdict
from typing import Any

SCHEMA_DIR = pathlib.Path(__file__).resolve().parent / "schemas"
OPENAI_SUBSET_PATH = SCHEMA_DIR / "openai_openapi_subset.json"
OPENAI_ROOT_SCHEMAS = ("CreateChatCompletionRequest", "CreateResponse")
_REF_PREFIX = "#/components/schemas/"

# Strings longer than this are swapped for a short stand-in before validating (see _shrink).
_LONG_STRING = 256
_MAX_MESSAGE = 1200


# --------------------------------------------------------------------------------------
# Long strings
# --------------------------------------------------------------------------------------


class _Elided(str):
    """A short stand-in for a long string that still reports the original length.

    jsonschema puts ``repr(instance)`` into every error message it builds, and a failing
    ``oneOf`` branch builds many of them: with a 10 MB base64 image inside a message that
    costs seconds.  The stand-in keeps the type (``str``) and ``len()`` (so ``maxLength`` /
    ``minLength``, e.g. the 20 MiB cap on ``input_image.image_url``, still apply); only its
    characters are cut, which no schema here looks at beyond the first few (``pattern`` is
    only used on short identifiers such as function names; ``format`` is not asserted).
    """

    __slots__ = ("_length",)

    def __new__(cls, original: str) -> _Elided:
        self = super().__new__(cls, f"{original[:48]}...<{len(original)} chars>")
        self._length = len(original)
        return self

    def __len__(self) -> int:
        return self._length


def _shrink(value: Any, plain: bool = False) -> Any:
    """Copy of a JSON value with every long string replaced by an :class:`_Elided`.

    `plain=True` makes the stand-ins plain `str`: pydantic's strict mode refuses a `str` subclass, and the
    Anthropic request types set no length limits that the stand-in's `len()` would have to keep.
    """
    if isinstance(value, str):
        if len(value) <= _LONG_STRING:
            return value
        return str(_Elided(value)) if plain else _Elided(value)
    if isinstance(value, dict):
        return {k: _shrink(v, plain) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shrink(v, plain) for v in value]
    return value


def _clip(message: str) -> str:
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


# --------------------------------------------------------------------------------------
# OpenAI (jsonschema against the official OpenAPI document)
# --------------------------------------------------------------------------------------

# Keywords whose value is a schema / a list of schemas / a name -> schema map.
_SCHEMA_KEYS = ("items", "additionalProperties", "not", "propertyNames", "contains", "if", "then", "else",
                "unevaluatedProperties", "unevaluatedItems", "additionalItems")
_SCHEMA_LIST_KEYS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_MAP_KEYS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


def _normalize(schema: Any, component: str) -> Any:
    """Turn the few OpenAPI-isms left in the 3.1 document into plain JSON Schema 2020-12.

    * ``nullable: true`` (OpenAPI 3.0, still used on some chat-completions fields such as
      ``max_completion_tokens`` or ``stop``) -> ``anyOf: [{"type": "null"}, <schema>]``;
      jsonschema would otherwise ignore it and reject ``null``.
    * ``$recursiveRef: "#"`` (draft 2019-09, used by ``CompoundFilter``) -> a ``$ref`` to the
      enclosing component: in the extracted document ``#`` would be the document root, and
      draft 2020-12 does not know the keyword at all (it would accept anything).
    * ``oneOf`` -> ``anyOf``.  The spec's unions are tagged unions meant to be resolved by
      their ``discriminator``, and some overlap: ``{"role": "user", "content": [...]}`` in
      ``CreateResponse.input`` is both an ``EasyInputMessage`` and an ``Item`` /
      ``InputMessage``, so JSON Schema's "exactly one" would reject valid bodies.
    ``discriminator``, ``x-*`` and ``example`` are annotations and are left alone.
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_KEYS:
            out[key] = _normalize(value, component)
        elif key == "oneOf" and isinstance(value, list):
            out["anyOf"] = [_normalize(v, component) for v in value]
        elif key in _SCHEMA_LIST_KEYS and isinstance(value, list):
            out[key] = [_normalize(v, component) for v in value]
        elif key in _SCHEMA_MAP_KEYS and isinstance(value, dict):
            out[key] = {k: _normalize(v, component) for k, v in value.items()}
        elif key == "$recursiveRef":
            out["$ref"] = _REF_PREFIX + component
        elif key in ("$recursiveAnchor", "nullable"):
            continue
        else:
            out[key] = value
    if schema.get("nullable") is True:
        return {"anyOf": [{"type": "null"}, out]}
    return out


@functools.lru_cache(maxsize=1)
def openai_document() -> dict:
    """The stored OpenAPI subset, as committed (with its ``x-source``)."""
    return json.loads(OPENAI_SUBSET_PATH.read_text(encoding="utf-8"))


@functools.cache  # an lru_cache without a size limit
def _openai_validator(name: str):
    import jsonschema

    schemas = openai_document()["components"]["schemas"]
    if name not in schemas:
        raise KeyError(f"{name} is not in {OPENAI_SUBSET_PATH.name}; regenerate it with that root")
    root = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": _REF_PREFIX + name,
        "components": {"schemas": {k: _normalize(v, k) for k, v in schemas.items()}},
    }
    return jsonschema.Draft202012Validator(root)


_TAG_KEYS = ("type", "role")


def _is_variant_mismatch(err) -> bool:
    """True when ``err`` (from one ``oneOf``/``anyOf`` branch) says "not this variant at all".

    That is: the wrong JSON type, or the wrong ``type``/``role`` tag, or a nested union none
    of whose branches fit either.
    """
    path = list(err.relative_path)
    if not path and err.validator == "type":
        return True
    if len(path) == 1 and path[0] in _TAG_KEYS and err.validator in ("enum", "const", "type", "anyOf", "oneOf"):
        return True
    if not path and err.validator == "required" and any(err.message == f"{k!r} is a required property" for k in _TAG_KEYS):
        return True
    if not path and err.validator in ("oneOf", "anyOf") and err.context:
        return all(any(_is_variant_mismatch(e) for e in errs) for errs in _branches(err).values())
    return False


def _branches(err) -> dict[int, list]:
    by_branch: dict[int, list] = defaultdict(list)
    for sub in err.context:
        by_branch[sub.relative_schema_path[0]].append(sub)
    return by_branch


def _allowed_tags(err, at_tag: bool = False) -> set[str]:
    """The ``type``/``role`` values the branches of a failed union (and nested unions) accept.

    ``at_tag``: ``err`` is a union on the tag value itself (e.g. ``anyOf: [enum, null]``).
    """
    found: set[str] = set()
    for sub in err.context:
        path = list(sub.relative_path)
        on_tag = not path if at_tag else (len(path) == 1 and path[0] in _TAG_KEYS)
        if sub.validator in ("enum", "const") and on_tag:
            found.update(map(str, sub.validator_value if sub.validator == "enum" else [sub.validator_value]))
        elif sub.validator in ("anyOf", "oneOf") and sub.context:
            if on_tag:
                found |= _allowed_tags(sub, at_tag=True)
            elif not at_tag and not path:
                found |= _allowed_tags(sub)
        elif sub.validator == "required" and not at_tag and not path and isinstance(sub.schema, dict):
            for key in _TAG_KEYS:
                if sub.message == f"{key!r} is a required property":
                    prop = sub.schema.get("properties", {}).get(key, {})
                    found.update(map(str, prop.get("enum", [prop["const"]] if "const" in prop else [])))
    return found


def _json_path(err) -> str:
    return "/".join(str(p) for p in err.absolute_path) or "<body>"


def _explain_jsonschema(err) -> list[str]:
    """Readable lines for one jsonschema error, looking inside ``oneOf``/``anyOf`` failures.

    A union failure alone says only "is not valid under any of the given schemas".  The
    branches whose tag (``type``/``role``) or JSON type does not fit are dropped and the
    errors of the remaining ones are reported instead; when none remains the allowed tag
    values are listed.
    """
    if err.validator in ("oneOf", "anyOf") and err.context:
        branches = _branches(err)
        plausible = {i: errs for i, errs in branches.items() if not any(_is_variant_mismatch(e) for e in errs)}
        if plausible:
            lines: list[str] = []
            for errs in plausible.values():
                for sub in errs:
                    lines.extend(_explain_jsonschema(sub))
            return lines
        allowed = sorted(_allowed_tags(err))
        if not allowed:  # a plain union such as integer-or-null: say what each branch wanted
            reasons = dict.fromkeys(e.message for errs in branches.values() for e in errs)
            return [_clip(f"{_json_path(err)}: matches none of: {' / '.join(reasons)}")]
        tag = ", ".join(f"{k}={err.instance[k]!r}" for k in _TAG_KEYS if isinstance(err.instance, dict) and k in err.instance)
        return [_clip(f"{_json_path(err)}: matches none of the {len(branches)} variants "
                      f"({tag or type(err.instance).__name__}); allowed type/role values: {allowed}")]
    return [_clip(f"{_json_path(err)}: {err.message}")]


def _openai_errors(name: str, body: dict) -> list[str]:
    validator = _openai_validator(name)
    errors = sorted(validator.iter_errors(_shrink(body)), key=lambda e: [str(p) for p in e.absolute_path])
    lines: list[str] = []
    for err in errors:
        for line in _explain_jsonschema(err):
            if line not in lines:
                lines.append(line)
    return lines


def openai_chat_schema_errors(body: dict) -> list[str]:
    """Errors of a ``POST /v1/chat/completions`` body against ``CreateChatCompletionRequest``."""
    return _openai_errors("CreateChatCompletionRequest", body)


def openai_responses_schema_errors(body: dict) -> list[str]:
    """Errors of a ``POST /v1/responses`` body against ``CreateResponse``."""
    return _openai_errors("CreateResponse", body)


# --------------------------------------------------------------------------------------
# Anthropic (pydantic against the SDK's own request TypedDicts)
# --------------------------------------------------------------------------------------

# Parameters of ``messages.create`` that the SDK sends as HTTP headers, never in the body,
# although they are keys of its ``MessageCreateParams`` TypedDicts.
_ANTHROPIC_HEADER_PARAMS = {
    "betas": "anthropic-beta",
    "user_profile_id": "anthropic-user-profile-id",
    "workspace_id": "anthropic-workspace-id",
}


def _anthropic_params_type(beta: bool, stream: bool) -> type:
    if beta:
        from anthropic.types.beta import message_create_params as params
    else:
        from anthropic.types import message_create_params as params
    return params.MessageCreateParamsStreaming if stream else params.MessageCreateParamsNonStreaming


@functools.cache  # an lru_cache without a size limit
def _anthropic_adapter(beta: bool, stream: bool, key: str | None = None):
    """A ``TypeAdapter`` for ``list[<the params TypedDict>]``, or for one of its fields.

    TypeAdapter refuses a config for a TypedDict itself, and a TypedDict's default is to
    ignore unknown keys.  Wrapped in a list, the config applies and is inherited by every
    nested TypedDict that has no config of its own (all the SDK's), so unknown keys and
    unknown block fields are reported.  strict=True: no str->int style coercion.
    """
    import typing

    import pydantic

    typed_dict = _anthropic_params_type(beta, stream)
    target = typed_dict if key is None else typing.get_type_hints(typed_dict)[key]
    with warnings.catch_warnings():
        # A few beta TypedDicts (BetaFallbackParam) declare ``extra_items=object``; pydantic
        # then keeps the SDK's own choice over extra="forbid" and says so.
        warnings.filterwarnings("ignore", message=r"TypedDict class .* allows extra items")
        return pydantic.TypeAdapter(list[target], config=pydantic.ConfigDict(extra="forbid", strict=True))


def _segments(loc: tuple, body: Any) -> list[tuple[str, Any]]:
    """Split a pydantic ``loc`` into ("key", k) steps through ``body`` and ("tag", name) steps.

    Union members show up in ``loc`` as their type's name (``ImageBlockParam``,
    ``str``...); they are recognised as the steps that are not a key/index of the input.
    """
    segs: list[tuple[str, Any]] = []
    node = body
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and isinstance(part, str) and (part in node or last):
            segs.append(("key", part))
            node = node.get(part)
        elif isinstance(node, (list, tuple)) and isinstance(part, int) and 0 <= part < len(node):
            segs.append(("key", part))
            node = node[part]
        else:
            segs.append(("tag", part))
    return segs


def _pydantic_mismatch(err: dict, at: int) -> bool:
    rest = err["segs"][at + 1:]
    if not rest:
        return err["type"].endswith("_type") or err["type"] in ("literal_error", "is_instance_of", "model_type")
    return rest in ([("key", "type")], [("key", "role")]) and err["type"] == "literal_error"


def _member_mismatch(errors: list[dict], at: int) -> bool:
    """Whether the union member whose tag is at ``segs[at]`` is "not this variant at all"."""
    if any(_pydantic_mismatch(e, at) for e in errors):
        return True
    nested: dict[Any, list[dict]] = defaultdict(list)
    for err in errors:
        if len(err["segs"]) > at + 1 and err["segs"][at + 1][0] == "tag":
            nested[err["segs"][at + 1][1]].append(err)
    # A member that is itself a union (e.g. the SDK's response ``ContentBlock`` inside
    # ``MessageParam.content``) is a mismatch when all of its own members are.
    return (sum(map(len, nested.values())) == len(errors)
            and all(_member_mismatch(errs, at + 1) for errs in nested.values()))


def _reduce_pydantic(errors: list[dict]) -> list[dict]:
    """Keep, for every union in the error list, only the members whose tag fits the input."""
    out: list[dict] = []
    groups: dict[tuple, dict[Any, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for err in errors:
        at = next((i for i, (kind, _) in enumerate(err["segs"]) if kind == "tag"), None)
        if at is None:
            out.append(err)
        else:
            groups[tuple(err["segs"][:at])][err["segs"][at][1]].append(err)
    for prefix, members in groups.items():
        at = len(prefix)
        plausible = {t: errs for t, errs in members.items() if not _member_mismatch(errs, at)}
        if plausible:
            for errs in plausible.values():
                out.extend(_reduce_pydantic([{**e, "segs": e["segs"][:at] + e["segs"][at + 1:]} for e in errs]))
            continue
        expected = sorted({
            e["ctx"]["expected"] for errs in members.values() for e in errs
            if e["type"] == "literal_error" and e["segs"][-1] in (("key", "type"), ("key", "role"))
            and all(kind == "tag" for kind, _ in e["segs"][at:-1]) and "expected" in (e.get("ctx") or {})
        })
        hint = f"; expected type/role {', '.join(expected)}" if expected else ""
        out.append({"segs": list(prefix), "type": "union",
                    "msg": f"matches none of the {len(members)} allowed variants{hint}", "ctx": None})
    return out


def _format_pydantic(raw: list[dict], body: Any, prefix: tuple = ()) -> list[str]:
    errors = [{"segs": _segments(prefix + tuple(e["loc"]), body), "type": e["type"], "msg": e["msg"],
               "ctx": e.get("ctx")} for e in raw]
    lines = []
    for err in _reduce_pydantic(errors):
        path = ".".join(str(v) for _, v in err["segs"]) or "<body>"
        lines.append(_clip(f"{path}: {err['msg']}"))
    return lines


def _drain(value: Any, path: tuple, body: Any, lines: list[str]) -> None:
    """Walk a validated value, consuming the iterators pydantic validates lazily.

    The SDK types most lists as ``Iterable[...]`` (``messages``, ``content``, ``tools``,
    ``system``...), which pydantic validates only when iterated: without this walk an
    invalid content block would pass.  Also reports unknown keys of blocks that matched
    only one of the SDK's *response* models (``ContentBlock`` is accepted in
    ``MessageParam.content``), which allow extra keys.
    """
    import pydantic

    if type(value).__name__ == "ValidatorIterator":
        iterator = iter(value)
        index = 0
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                break
            except pydantic.ValidationError as exc:
                lines.extend(_format_pydantic(exc.errors(include_url=False), body, path))
            else:
                _drain(item, (*path, index), body, lines)
            index += 1
    elif isinstance(value, dict):
        for key, item in value.items():
            _drain(item, (*path, key), body, lines)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _drain(item, (*path, index), body, lines)
    elif isinstance(value, pydantic.BaseModel):
        extra = sorted((value.model_extra or {}).keys())
        if extra:
            where = ".".join(str(p) for p in path) or "<body>"
            lines.append(f"{where}: unknown keys {extra} (only the SDK's response model "
                         f"{type(value).__name__}, which allows extra keys, accepted this block)")
        for key in type(value).model_fields:
            _drain(getattr(value, key), (*path, key), body, lines)


def _anthropic_errors(body: dict, *, beta: bool, allow_system_messages: bool) -> list[str]:
    import pydantic

    if not isinstance(body, dict):
        return [f"<body>: expected a JSON object, got {type(body).__name__}"]
    small = _shrink(body, plain=True)
    lines: list[str] = []
    for key, header in _ANTHROPIC_HEADER_PARAMS.items():
        if key in small:
            lines.append(f"{key}: is sent as the {header!r} header by the SDK, not in the JSON body")
    body_keys = {k: v for k, v in small.items() if k not in _ANTHROPIC_HEADER_PARAMS}
    stream = bool(small.get("stream"))
    try:
        validated = _anthropic_adapter(beta, stream).validate_python([body_keys])
    except pydantic.ValidationError as exc:
        raw = [{**e, "loc": tuple(e["loc"])[1:]} for e in exc.errors(include_url=False)]
        lines.extend(_format_pydantic(raw, small))
        # The body as a whole failed (say an unknown or missing key), so nothing was drained:
        # check the lazily validated insides of every known key that has no error of its own.
        failed = {e["loc"][0] for e in raw if e["loc"]}
        known = _anthropic_params_type(beta, stream).__annotations__
        for key, value in body_keys.items():
            if key in known and key not in failed:
                _drain(_anthropic_adapter(beta, stream, key).validate_python([value])[0], (key,), small, lines)
    else:
        _drain(validated[0], (), small, lines)
    if not allow_system_messages:
        messages = small.get("messages")
        for index, message in enumerate(messages if isinstance(messages, list) else []):
            if isinstance(message, dict) and message.get("role") == "system":
                lines.append(f"messages.{index}.role: 'system' inside messages (the SDK's MessageParam accepts it "
                             "as a mid-conversation system message since anthropic 0.105; older SDKs and the "
                             "top-level `system` parameter do not) - pass allow_system_messages=True to accept")
    return list(dict.fromkeys(lines))


def anthropic_schema_errors(body: dict, *, allow_system_messages: bool = False) -> list[str]:
    """Errors of a ``POST /v1/messages`` body against ``anthropic.types.message_create_params``.

    ``MessageCreateParamsNonStreaming``, or ``MessageCreateParamsStreaming`` when
    ``body.get("stream")``.  Header-only parameters (``betas``, ``workspace_id``,
    ``user_profile_id``) found in the body are reported.  ``role: "system"`` entries in
    ``messages`` are reported unless ``allow_system_messages`` (the installed SDK types
    accept them; see the message).
    """
    return _anthropic_errors(body, beta=False, allow_system_messages=allow_system_messages)


def anthropic_beta_schema_errors(body: dict, *, allow_system_messages: bool = False) -> list[str]:
    """Same as :func:`anthropic_schema_errors` for ``client.beta.messages.create`` bodies."""
    return _anthropic_errors(body, beta=True, allow_system_messages=allow_system_messages)


# --------------------------------------------------------------------------------------
# Regenerating the OpenAI subset
# --------------------------------------------------------------------------------------


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def build_openai_subset(spec: dict, roots: tuple[str, ...], source: dict) -> dict:
    """The schemas ``roots`` and everything they reach through ``$ref``, copied verbatim."""
    schemas = spec["components"]["schemas"]
    keep: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        found: set[str] = set()
        _refs(schemas[name], found)
        for ref in found:
            if not ref.startswith(_REF_PREFIX):
                raise ValueError(f"{name}: $ref {ref!r} points outside components/schemas")
            todo.append(ref[len(_REF_PREFIX):])
    return {
        "x-source": source,
        "openapi": spec["openapi"],
        "info": {k: spec["info"][k] for k in ("title", "version", "license") if k in spec["info"]},
        "components": {"schemas": {name: copy.deepcopy(schemas[name]) for name in sorted(keep)}},
    }


def _load_spec(path: pathlib.Path) -> dict:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        pass

    # Keep dates as strings, as in the repository's own openapi.json.
    Loader.yaml_implicit_resolvers = {
        first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in base.yaml_implicit_resolvers.items()
    }
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    regen = sub.add_parser("regenerate-openai", help="rebuild tests/schemas/openai_openapi_subset.json")
    regen.add_argument("spec", type=pathlib.Path, help="openapi.yaml (or openapi.json) of openai/openai-openapi")
    regen.add_argument("--commit", required=True, help="the openai/openai-openapi commit the file comes from")
    regen.add_argument("--repo-path", default=None, help="path of the file inside the repository")
    regen.add_argument("--out", type=pathlib.Path, default=OPENAI_SUBSET_PATH)
    args = parser.parse_args(argv)

    spec = _load_spec(args.spec)
    license_file = args.spec.with_name("LICENSE")
    source = {
        "repository": "https://github.com/openai/openai-openapi",
        "path": args.repo_path or args.spec.name,
        "commit": args.commit,
        "license": "MIT",
        "license_text": license_file.read_text(encoding="utf-8") if license_file.exists() else None,
        "roots": list(OPENAI_ROOT_SCHEMAS),
        "note": "components/schemas holds the roots and every schema they reach through $ref, copied "
                "verbatim; generated by tests/provider_schemas.py regenerate-openai",
    }
    subset = build_openai_subset(spec, OPENAI_ROOT_SCHEMAS, source)
    args.out.write_text(json.dumps(subset, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({len(subset['components']['schemas'])} schemas)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
