"""Fixtures shared across test modules.

`oai` / `ant`: a fake OpenAI / Anthropic server (one per module, reset for each test) whose every captured
request body is checked, when the test ends, against the provider's official request schema. A module may
define its own fixture of the same name (pytest lets the nearer one win).
"""

from __future__ import annotations

import pytest
from dropin_support import ANTHROPIC_KEY, OPENAI_KEY
from fake_servers import FakeAnthropicServer, FakeOpenAIServer
from provider_schemas import (
    anthropic_beta_schema_errors,
    anthropic_schema_errors,
    openai_chat_schema_errors,
    openai_responses_schema_errors,
)


@pytest.fixture(scope="module")
def oai_server():
    with FakeOpenAIServer(expected_key=OPENAI_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def ant_server():
    with FakeAnthropicServer(expected_key=ANTHROPIC_KEY) as server:
        yield server


@pytest.fixture
def oai(oai_server):
    oai_server.reset()
    yield oai_server
    for request in oai_server.requests:
        if request.method != "POST":  # GET /v1/models has no body to check
            continue
        check = openai_responses_schema_errors if request.path.endswith("/responses") else openai_chat_schema_errors
        assert check(request.body) == [], "a body broke OpenAI's schema"


@pytest.fixture
def ant(ant_server):
    ant_server.reset()
    yield ant_server
    for request, body in zip(ant_server.requests, ant_server.bodies, strict=True):
        check = anthropic_beta_schema_errors if "anthropic-beta" in request.headers else anthropic_schema_errors
        assert check(body) == [], "a body broke the Anthropic SDK's request type"
