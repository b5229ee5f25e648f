"""Routing configuration of the LLM gateway, read from a litellm proxy config file.

The YAML is litellm's proxy format, so an existing ``config.yaml`` works unchanged::

    model_list:
      - model_name: fast                      # logical name callers ask for
        litellm_params:
          model: openai/gpt-4o-mini           # litellm model string (provider/model)
          api_key: os.environ/OPENAI_API_KEY  # resolved from the environment at load time
          api_base: https://api.openai.com/v1
          timeout: 60                         # litellm's key: our total timeout by default
          stream_timeout: 10                  # litellm's key: our first-token timeout by default
        model_info:
          id: openai-mini                     # litellm's key: the deployment's name in answers
          # --- keys of this gateway (all optional) ---
          connect_timeout: 5                  # seconds to establish the connection
          first_token_timeout: 10             # seconds until the first streamed token
          total_timeout: 60                   # seconds for the whole call
          retries: 2                          # extra attempts on this deployment
          retry_base_delay: 0.5               # backoff: full jitter in [0, base * 2**n]
          retry_max_delay: 8                  # backoff cap
          max_retry_after: 30                 # longest Retry-After honoured (else next deployment)
          redact_pii: true                    # default: true for every provider but ``local``
          input_cost_per_token: 0.00000015    # USD; also accepted in litellm_params
          output_cost_per_token: 0.0000006
    router_settings:
      fallbacks: [{fast: [smart]}]            # logical model -> logical models tried next
      default_fallbacks: [local]              # tried after every model's own chain
      allowed_fails: 3                        # failures tolerated in the window; the next opens
      cooldown_time: 30                       # seconds a circuit stays open before a probe
      failure_window: 60                      # (ours) seconds over which failures are counted

Router-only litellm keys (``rpm``, ``tpm``, ``max_retries``, ``order``, ``weight``, ...) are
accepted and not sent to providers; ``max_retries`` is always 0 because the gateway is the only
layer that retries. ``litellm_settings`` and ``general_settings`` sections are ignored.

With no file, :func:`default_config` builds deployments from the provider keys in the
environment (see its docstring), followed by the bundled local model ``local/smollm2``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

import yaml

from ai_orchestration._config_files import ConfigFileError, DocumentReader

__all__ = [
    "LOCAL_MODEL",
    "BreakerPolicy",
    "Deployment",
    "GatewayConfig",
    "LlmConfigError",
    "RetryPolicy",
    "Timeouts",
    "default_config",
    "load_config",
    "parse_config",
]

LOCAL_MODEL: Final[str] = "local/smollm2"
"""litellm model string of the bundled local model (provider ``local``)."""
LOCAL_LOGICAL_NAME: Final[str] = "local"
"""Logical name under which the default config lists the local model."""
# Keys litellm's Router reads from litellm_params that must not reach a provider call.
_ROUTER_ONLY_KEYS: Final[frozenset[str]] = frozenset(
    {
        "model",
        "rpm",
        "tpm",
        "max_retries",
        "num_retries",
        "order",
        "weight",
        "max_parallel_requests",
        "timeout",
        "stream_timeout",
        "input_cost_per_token",
        "output_cost_per_token",
        "mock_response",
    }
)
_T = TypeVar("_T")


class LlmConfigError(ConfigFileError):
    """A routing config is invalid; the message names the file and the path of the bad key
    (e.g. ``model_list[2].litellm_params.api_key``)."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long one attempt on a deployment may take, in seconds."""

    connect: float = 5.0
    """Establishing the connection."""
    first_token: float = 30.0
    """From the request until the first streamed token (streams only)."""
    total: float = 120.0
    """The whole attempt, including the full stream."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries on one deployment before the gateway moves on to the next."""

    retries: int = 2
    """Extra attempts after the first (0: try once)."""
    base_delay: float = 0.5
    """Backoff before retry ``n`` is uniform in ``[0, min(max_delay, base_delay * 2**n)]``."""
    max_delay: float = 8.0
    """Cap of the backoff."""
    max_retry_after: float = 30.0
    """Longest ``Retry-After`` honoured; a longer one moves on to the next deployment."""


_DEFAULT_TIMEOUTS: Final = Timeouts()
_DEFAULT_RETRY: Final = RetryPolicy()


@dataclass(frozen=True, slots=True)
class Deployment:
    """One concrete model endpoint behind a logical model name."""

    id: str
    """Stable name: ``model_info.id`` or ``<litellm model>[@<api_base>]``; names the breaker
    and ``Completion.deployment``."""
    model_name: str
    """The logical name it serves (``fast``, ``smart``, ...)."""
    litellm_model: str
    """litellm model string, ``provider/model``."""
    params: Mapping[str, object] = field(default_factory=dict)
    """Provider parameters passed to litellm (``api_base``, ``api_key``, ...), env refs resolved."""
    timeouts: Timeouts = field(default_factory=Timeouts)
    """Per-attempt timeouts."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Retries on this deployment."""
    redact_pii: bool = True
    """Whether PII is redacted from messages before they are sent here."""
    input_cost_per_token: float | None = None
    """USD per prompt token, when configured (else litellm's price list)."""
    output_cost_per_token: float | None = None
    """USD per completion token, when configured."""

    @property
    def provider(self) -> str:
        """The provider prefix of the model string (``openai``, ``anthropic``, ``local``...)."""
        custom = self.params.get("custom_llm_provider")
        if isinstance(custom, str) and custom:
            return custom
        return self.litellm_model.split("/", 1)[0] if "/" in self.litellm_model else "openai"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a deployment's circuit opens and for how long."""

    allowed_fails: int = 3
    """Failures tolerated within ``window``; the next one opens the circuit."""
    window: float = 60.0
    """Seconds over which failures are counted."""
    cooldown: float = 30.0
    """Seconds the circuit stays open before one probe call is let through."""

    @property
    def failure_threshold(self) -> int:
        """Failures within the window that open the circuit."""
        return self.allowed_fails + 1


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The parsed routing config."""

    deployments: tuple[Deployment, ...]
    """Every deployment, in file order (the order they are tried in)."""
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Logical name -> logical names tried after its own deployments."""
    default_fallbacks: tuple[str, ...] = ()
    """Logical names tried after every chain (and for names with no deployments)."""
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    """Circuit breaker policy of every deployment."""
    source: str = "<default>"
    """Where the config came from (a file path or ``<default>``)."""

    @property
    def model_names(self) -> tuple[str, ...]:
        """Logical names that have deployments, in first-seen order."""
        return tuple(dict.fromkeys(d.model_name for d in self.deployments))

    def route(self, model: str) -> tuple[Deployment, ...]:
        """Deployments to try for ``model``: its own, then its fallbacks', then the defaults'.

        Each deployment appears once (at its first position). An unknown name gets only the
        default fallbacks; with none, :class:`LlmConfigError`.
        """
        names = [model, *self.fallbacks.get(model, ()), *self.default_fallbacks]
        chain: dict[str, Deployment] = {}
        for name in names:
            for deployment in self.deployments:
                if deployment.model_name == name:
                    chain.setdefault(deployment.id, deployment)
        if not chain:
            raise LlmConfigError(self.source, "model_list", f"no deployment serves model {model!r}")
        return tuple(chain.values())


def load_config(path: Path | str, *, environ: Mapping[str, str]) -> GatewayConfig:
    """Read and validate a litellm proxy config file; ``environ`` resolves ``os.environ/``."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LlmConfigError(source, "<file>", f"cannot read: {exc.strerror}") from exc
    return parse_config(text, environ=environ, source=source)


def parse_config(
    text: str, *, environ: Mapping[str, str], source: str = "<string>"
) -> GatewayConfig:
    """Validate a litellm proxy config given as YAML text."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LlmConfigError(source, "<yaml>", f"not valid YAML: {exc}") from exc
    reader = _Reader(source, environ)
    root = reader.mapping(document if document is not None else {}, "")
    entries = reader.sequence(root.get("model_list"), "model_list")
    if not entries:
        raise LlmConfigError(source, "model_list", "at least one deployment is required")
    deployments = _with_unique_ids(
        [reader.deployment(entry, f"model_list[{i}]") for i, entry in enumerate(entries)], source
    )
    settings = reader.mapping(root.get("router_settings", {}), "router_settings")
    names = {d.model_name for d in deployments}
    fallbacks = reader.fallbacks(settings.get("fallbacks", []), "router_settings.fallbacks", names)
    default_fallbacks = tuple(
        reader.known_name(item, f"router_settings.default_fallbacks[{i}]", names)
        for i, item in enumerate(
            reader.sequence(
                settings.get("default_fallbacks", []), "router_settings.default_fallbacks"
            )
        )
    )
    breaker = BreakerPolicy(
        allowed_fails=reader.count(settings, "allowed_fails", "router_settings", 3),
        window=reader.seconds(settings, "failure_window", "router_settings", 60.0),
        cooldown=reader.seconds(settings, "cooldown_time", "router_settings", 30.0),
    )
    return GatewayConfig(
        deployments=deployments,
        fallbacks=fallbacks,
        default_fallbacks=default_fallbacks,
        breaker=breaker,
        source=source,
    )


def _with_unique_ids(deployments: list[Deployment], source: str) -> tuple[Deployment, ...]:
    seen: dict[str, int] = {}
    for index, deployment in enumerate(deployments):
        if deployment.id in seen:
            raise LlmConfigError(
                source,
                f"model_list[{index}].model_info.id",
                f"deployment id {deployment.id!r} repeats model_list[{seen[deployment.id]}]; "
                "set a distinct model_info.id",
            )
        seen[deployment.id] = index
    return tuple(deployments)


@dataclass(frozen=True, slots=True)
class _Reader(DocumentReader):
    """The routing file's reads."""

    def fail(self, path: str, problem: str) -> LlmConfigError:
        return LlmConfigError(self.source, path or "<root>", problem)

    def text(self, value: object, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, "expected a non-empty string")
        return self.resolve(value, path)

    def optional(
        self, table: Mapping[str, object], key: str, path: str, read: Callable[[object, str], _T]
    ) -> _T | None:
        value = table.get(key)
        return None if value is None else read(value, f"{path}.{key}")

    def number(self, value: object, path: str) -> float:
        if isinstance(value, str):
            value = self.resolve(value, path)
            try:
                value = float(value)
            except ValueError:
                raise self.fail(path, f"expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.fail(path, f"expected a non-negative number, got {value!r}")
        return float(value)

    def seconds(self, table: Mapping[str, object], key: str, path: str, default: float) -> float:
        value = self.optional(table, key, path, self.number)
        if value is not None and value <= 0:
            raise self.fail(f"{path}.{key}", "expected a positive number of seconds")
        return default if value is None else value

    def count(self, table: Mapping[str, object], key: str, path: str, default: int) -> int:
        value = self.optional(table, key, path, self.number)
        if value is not None and value != int(value):
            raise self.fail(f"{path}.{key}", f"expected a whole number, got {value!r}")
        return default if value is None else int(value)

    def flag(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {value!r}")
        return value

    def known_name(self, value: object, path: str, names: set[str]) -> str:
        name = self.text(value, path)
        if name not in names:
            raise self.fail(path, f"unknown model_name {name!r} (known: {sorted(names)})")
        return name

    def fallbacks(self, value: object, path: str, names: set[str]) -> dict[str, tuple[str, ...]]:
        # litellm's shape: a list of single-key mappings {model: [fallback, ...]}; a plain
        # mapping is accepted too.
        items = [value] if isinstance(value, dict) else self.sequence(value, path)
        result: dict[str, tuple[str, ...]] = {}
        for i, item in enumerate(items):
            item_path = path if isinstance(value, dict) else f"{path}[{i}]"
            for name, targets in self.mapping(item, item_path).items():
                self.known_name(name, f"{item_path}.{name}", names)
                result[name] = tuple(
                    self.known_name(target, f"{item_path}.{name}[{j}]", names)
                    for j, target in enumerate(self.sequence(targets, f"{item_path}.{name}"))
                )
        return result

    def deployment(self, value: object, path: str) -> Deployment:
        entry = self.mapping(value, path)
        model_name = self.text(entry.get("model_name"), f"{path}.model_name")
        params_path = f"{path}.litellm_params"
        raw_params = self.mapping(entry.get("litellm_params"), params_path)
        litellm_model = self.text(raw_params.get("model"), f"{params_path}.model")
        info_path = f"{path}.model_info"
        info = self.mapping(entry.get("model_info", {}), info_path)
        params = {
            key: self.resolve(item, f"{params_path}.{key}") if isinstance(item, str) else item
            for key, item in raw_params.items()
            if key not in _ROUTER_ONLY_KEYS
        }
        api_base = params.get("api_base")
        default_id = f"{litellm_model}@{api_base}" if isinstance(api_base, str) else litellm_model
        explicit_id = self.optional(info, "id", info_path, self.text)
        provider = litellm_model.split("/", 1)[0]
        total = self.seconds(
            info,
            "total_timeout",
            info_path,
            self.seconds(raw_params, "timeout", params_path, _DEFAULT_TIMEOUTS.total),
        )
        timeouts = Timeouts(
            connect=self.seconds(info, "connect_timeout", info_path, _DEFAULT_TIMEOUTS.connect),
            first_token=self.seconds(
                info,
                "first_token_timeout",
                info_path,
                self.seconds(
                    raw_params, "stream_timeout", params_path, _DEFAULT_TIMEOUTS.first_token
                ),
            ),
            total=total,
        )
        retry = RetryPolicy(
            retries=self.count(info, "retries", info_path, _DEFAULT_RETRY.retries),
            base_delay=self.number(
                info.get("retry_base_delay", _DEFAULT_RETRY.base_delay),
                f"{info_path}.retry_base_delay",
            ),
            max_delay=self.seconds(info, "retry_max_delay", info_path, _DEFAULT_RETRY.max_delay),
            max_retry_after=self.seconds(
                info, "max_retry_after", info_path, _DEFAULT_RETRY.max_retry_after
            ),
        )
        redact = self.optional(info, "redact_pii", info_path, self.flag)
        return Deployment(
            id=explicit_id or default_id,
            model_name=model_name,
            litellm_model=litellm_model,
            params=params,
            timeouts=timeouts,
            retry=retry,
            redact_pii=provider != "local" if redact is None else redact,
            input_cost_per_token=self.price(info, raw_params, "input_cost_per_token", path),
            output_cost_per_token=self.price(info, raw_params, "output_cost_per_token", path),
        )

    def price(
        self, info: Mapping[str, object], params: Mapping[str, object], key: str, path: str
    ) -> float | None:
        from_info = self.optional(info, key, f"{path}.model_info", self.number)
        if from_info is not None:
            return from_info
        return self.optional(params, key, f"{path}.litellm_params", self.number)


# (env vars that must all be set, logical name -> litellm model) per provider of the default
# config. Model names are ones litellm's bundled price list knows, so costs come out right.
_PROVIDER_DEFAULTS: Final[tuple[tuple[tuple[str, ...], dict[str, str]], ...]] = (
    (("OPENAI_API_KEY",), {"fast": "openai/gpt-4o-mini", "smart": "openai/gpt-4o"}),
    (
        ("ANTHROPIC_API_KEY",),
        {"fast": "anthropic/claude-haiku-4-5", "smart": "anthropic/claude-sonnet-4-5"},
    ),
    (
        ("GEMINI_API_KEY",),
        {"fast": "gemini/gemini-2.5-flash", "smart": "gemini/gemini-2.5-pro"},
    ),
    (
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION_NAME"),
        {
            "fast": "bedrock/anthropic.claude-3-5-haiku-20241022-v1:0",
            "smart": "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0",
        },
    ),
)
DEFAULT_MODEL_NAMES: Final[tuple[str, ...]] = ("fast", "smart")
"""Logical names the default config defines (unknown names fall back to the local model)."""


def default_config(environ: Mapping[str, str]) -> GatewayConfig:
    """Deployments from the provider keys in ``environ``, then the bundled local model.

    Each provider below whose variables are all set contributes a ``fast`` and a ``smart``
    deployment, in this order (litellm itself reads the keys from the environment):

    - ``OPENAI_API_KEY`` (and optionally ``OPENAI_API_BASE``): gpt-4o-mini / gpt-4o
    - ``ANTHROPIC_API_KEY``: claude-haiku-4-5 / claude-sonnet-4-5
    - ``GEMINI_API_KEY``: gemini-2.5-flash / gemini-2.5-pro
    - ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION_NAME``: Bedrock Claude
    - ``AZURE_API_KEY``, ``AZURE_API_BASE``, ``AZURE_DEPLOYMENT`` (optionally
      ``AZURE_API_VERSION``): that Azure OpenAI deployment for both names
    - ``AIO_LLM_OPENAI_COMPATIBLE_BASE_URL`` and ``AIO_LLM_OPENAI_COMPATIBLE_MODEL`` (optionally
      ``AIO_LLM_OPENAI_COMPATIBLE_API_KEY``): any OpenAI-compatible server (vLLM, Ollama, ...)

    The local model ``local/smollm2`` is registered as logical name ``local`` and is every
    name's last fallback (``default_fallbacks``), so with no key at all it serves every name.
    """
    deployments: list[Deployment] = []
    for required, models in _PROVIDER_DEFAULTS:
        if all(environ.get(name) for name in required):
            deployments += [
                Deployment(id=m, model_name=n, litellm_model=m) for n, m in models.items()
            ]
    azure = environ.get("AZURE_DEPLOYMENT")
    if azure and environ.get("AZURE_API_KEY") and environ.get("AZURE_API_BASE"):
        model = f"azure/{azure}"
        deployments += [
            Deployment(id=model, model_name=n, litellm_model=model) for n in DEFAULT_MODEL_NAMES
        ]
    base_url = environ.get("AIO_LLM_OPENAI_COMPATIBLE_BASE_URL")
    compatible_model = environ.get("AIO_LLM_OPENAI_COMPATIBLE_MODEL")
    if base_url and compatible_model:
        model = f"openai/{compatible_model}"
        # vLLM and Ollama accept any key; the SDK insists on one being present.
        params = {
            "api_base": base_url,
            "api_key": environ.get("AIO_LLM_OPENAI_COMPATIBLE_API_KEY") or "none",
        }
        deployments += [
            Deployment(id=f"{model}@{base_url}", model_name=n, litellm_model=model, params=params)
            for n in DEFAULT_MODEL_NAMES
        ]
    local = Deployment(
        id=LOCAL_MODEL,
        model_name=LOCAL_LOGICAL_NAME,
        litellm_model=LOCAL_MODEL,
        # The local model runs in-process: a slow CPU needs time, and retrying cannot help.
        timeouts=Timeouts(connect=5.0, first_token=60.0, total=300.0),
        retry=RetryPolicy(retries=0),
        redact_pii=False,
        input_cost_per_token=0.0,
        output_cost_per_token=0.0,
    )
    return GatewayConfig(
        deployments=(*deployments, local),
        default_fallbacks=(LOCAL_LOGICAL_NAME,),
        source="<default>",
    )
