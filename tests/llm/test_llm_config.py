"""Routing config: litellm proxy files load, bad ones name the path, defaults follow the keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_orchestration.llm._config import (
    LOCAL_MODEL,
    GatewayConfig,
    LlmConfigError,
    default_config,
    load_config,
    parse_config,
)

# Shaped like a real litellm proxy config.yaml: extra sections and router-only keys included.
PROXY_CONFIG = """
model_list:
  - model_name: fast
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: os.environ/TEST_OPENAI_KEY
      api_base: https://api.openai.com/v1
      rpm: 600
      max_retries: 5
      timeout: 40
      stream_timeout: 7
    model_info:
      id: openai-mini
  - model_name: fast
    litellm_params:
      model: anthropic/claude-haiku-4-5
      api_key: os.environ/TEST_ANTHROPIC_KEY
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000005
    model_info:
      connect_timeout: 2
      first_token_timeout: 3
      total_timeout: 20
      retries: 1
      retry_base_delay: 0.1
      retry_max_delay: 1
      max_retry_after: 5
      redact_pii: false
  - model_name: smart
    litellm_params:
      model: azure/gpt-4o
      api_base: https://example.openai.azure.com
      api_version: "2024-06-01"
      api_key: os.environ/TEST_AZURE_KEY
  - model_name: local
    litellm_params:
      model: local/smollm2
router_settings:
  routing_strategy: simple-shuffle
  num_retries: 3
  fallbacks: [{fast: [smart]}]
  default_fallbacks: [local]
  allowed_fails: 2
  cooldown_time: 15
  failure_window: 45
litellm_settings:
  drop_params: true
general_settings:
  master_key: sk-1234
"""

ENVIRON = {"TEST_OPENAI_KEY": "sk-o", "TEST_ANTHROPIC_KEY": "sk-a", "TEST_AZURE_KEY": "az"}


def _parse(text: str, environ: dict[str, str] | None = None) -> GatewayConfig:
    return parse_config(text, environ=ENVIRON if environ is None else environ, source="cfg.yaml")


def test_litellm_proxy_config_loads_with_env_refs_and_our_keys() -> None:
    config = _parse(PROXY_CONFIG)
    mini, haiku, azure, local = config.deployments
    assert mini.id == "openai-mini"
    assert mini.params == {"api_key": "sk-o", "api_base": "https://api.openai.com/v1"}
    assert (mini.timeouts.total, mini.timeouts.first_token) == (40.0, 7.0)
    assert mini.redact_pii is True
    assert mini.retry.retries == 2
    assert haiku.id == "anthropic/claude-haiku-4-5"
    assert haiku.params == {"api_key": "sk-a"}
    assert (haiku.timeouts.connect, haiku.timeouts.first_token, haiku.timeouts.total) == (2, 3, 20)
    assert (haiku.retry.retries, haiku.retry.base_delay, haiku.retry.max_delay) == (1, 0.1, 1)
    assert haiku.retry.max_retry_after == 5
    assert haiku.redact_pii is False
    assert (haiku.input_cost_per_token, haiku.output_cost_per_token) == (1e-6, 5e-6)
    assert haiku.provider == "anthropic"
    assert azure.id == "azure/gpt-4o@https://example.openai.azure.com"
    assert azure.params["api_version"] == "2024-06-01"
    assert local.redact_pii is False
    assert config.fallbacks == {"fast": ("smart",)}
    assert config.default_fallbacks == ("local",)
    assert (config.breaker.allowed_fails, config.breaker.failure_threshold) == (2, 3)
    assert (config.breaker.cooldown, config.breaker.window) == (15.0, 45.0)
    assert config.model_names == ("fast", "smart", "local")


def test_route_follows_fallbacks_then_default_fallbacks() -> None:
    config = _parse(PROXY_CONFIG)
    assert [d.id for d in config.route("fast")] == [
        "openai-mini",
        "anthropic/claude-haiku-4-5",
        "azure/gpt-4o@https://example.openai.azure.com",
        LOCAL_MODEL,
    ]
    assert [d.id for d in config.route("smart")] == [
        "azure/gpt-4o@https://example.openai.azure.com",
        LOCAL_MODEL,
    ]
    assert [d.id for d in config.route("unknown")] == [LOCAL_MODEL]


def test_unknown_model_without_default_fallbacks_is_an_error() -> None:
    config = _parse("model_list: [{model_name: fast, litellm_params: {model: openai/x}}]")
    with pytest.raises(LlmConfigError, match="no deployment serves model 'smart'"):
        config.route("smart")


@pytest.mark.parametrize(
    ("text", "path", "problem"),
    [
        ("model_list: []", "model_list", "at least one deployment"),
        ("model_list: {fast: 1}", "model_list", "expected a list"),
        ("model_list: [{litellm_params: {model: x}}]", "model_list[0].model_name", "non-empty"),
        ("model_list: [{model_name: fast}]", "model_list[0].litellm_params", "mapping"),
        (
            "model_list: [{model_name: f, litellm_params: {model: x, api_key: os.environ/NOPE}}]",
            "model_list[0].litellm_params.api_key",
            "NOPE is not set",
        ),
        (
            "model_list: [{model_name: f, litellm_params: {model: x},"
            " model_info: {total_timeout: soon}}]",
            "model_list[0].model_info.total_timeout",
            "expected a number",
        ),
        (
            "model_list: [{model_name: f, litellm_params: {model: x}, model_info: {retries: 1.5}}]",
            "model_list[0].model_info.retries",
            "whole number",
        ),
        (
            "model_list: [{model_name: f, litellm_params: {model: x},"
            " model_info: {redact_pii: maybe}}]",
            "model_list[0].model_info.redact_pii",
            "true or false",
        ),
        (
            "model_list: [{model_name: f, litellm_params: {model: x}},"
            " {model_name: g, litellm_params: {model: x}}]",
            "model_list[1].model_info.id",
            "repeats model_list[0]",
        ),
        (
            "model_list: [{model_name: fast, litellm_params: {model: x}}]\n"
            "router_settings: {fallbacks: [{fast: [smart]}]}",
            "router_settings.fallbacks[0].fast[0]",
            "unknown model_name 'smart'",
        ),
        (
            "model_list: [{model_name: fast, litellm_params: {model: x}}]\n"
            "router_settings: {cooldown_time: 0}",
            "router_settings.cooldown_time",
            "positive",
        ),
        ("model_list: [", "<yaml>", "not valid YAML"),
    ],
)
def test_bad_configs_name_the_file_and_the_path(text: str, path: str, problem: str) -> None:
    with pytest.raises(LlmConfigError) as raised:
        _parse(text, environ={})
    assert raised.value.source == "cfg.yaml"
    assert raised.value.path == path
    assert problem in raised.value.problem
    assert str(raised.value).startswith(f"cfg.yaml: {path}: ")


def test_load_config_reads_the_file_and_names_it_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "litellm.yaml"
    good.write_text(PROXY_CONFIG, encoding="utf-8")
    assert load_config(good, environ=ENVIRON).source == str(good)
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_list: [{model_name: 3, litellm_params: {model: x}}]", encoding="utf-8")
    with pytest.raises(LlmConfigError, match=rf"^{bad}: model_list\[0\]\.model_name: "):
        load_config(bad, environ={})
    with pytest.raises(LlmConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", environ={})


def test_default_config_without_keys_serves_every_name_with_the_local_model() -> None:
    config = default_config({})
    assert [d.id for d in config.deployments] == [LOCAL_MODEL]
    for name in ("fast", "smart", "anything"):
        (only,) = config.route(name)
        assert only.litellm_model == LOCAL_MODEL
        assert only.redact_pii is False
        assert (only.input_cost_per_token, only.output_cost_per_token) == (0.0, 0.0)


def test_default_config_puts_keyed_providers_first_and_the_local_model_last() -> None:
    config = default_config(
        {
            "OPENAI_API_KEY": "sk-o",
            "ANTHROPIC_API_KEY": "sk-a",
            "AWS_ACCESS_KEY_ID": "id",  # incomplete Bedrock credentials: not used
            "AZURE_API_KEY": "az",
            "AZURE_API_BASE": "https://example.openai.azure.com",
            "AZURE_DEPLOYMENT": "gpt4o-prod",
            "AIO_LLM_OPENAI_COMPATIBLE_BASE_URL": "http://127.0.0.1:11434/v1",
            "AIO_LLM_OPENAI_COMPATIBLE_MODEL": "llama3.2",
        }
    )
    assert [d.litellm_model for d in config.route("fast")] == [
        "openai/gpt-4o-mini",
        "anthropic/claude-haiku-4-5",
        "azure/gpt4o-prod",
        "openai/llama3.2",
        LOCAL_MODEL,
    ]
    assert [d.litellm_model for d in config.route("smart")][:2] == [
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4-5",
    ]
    compatible = config.route("fast")[3]
    assert compatible.params == {"api_base": "http://127.0.0.1:11434/v1", "api_key": "none"}
    assert all(d.redact_pii for d in config.route("fast")[:-1])


def test_default_config_includes_gemini_and_bedrock_when_fully_keyed() -> None:
    config = default_config(
        {
            "GEMINI_API_KEY": "g",
            "AWS_ACCESS_KEY_ID": "id",
            "AWS_SECRET_ACCESS_KEY": "secret",
            "AWS_REGION_NAME": "eu-west-1",
        }
    )
    assert [d.provider for d in config.route("smart")] == ["gemini", "bedrock", "local"]
