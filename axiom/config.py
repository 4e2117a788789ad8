"""Typed settings: `config.yaml` plus environment overrides, validated once at the face.

Order of precedence (highest first): explicit overrides passed by a face (CLI flags, notebook
parameters) > environment variables (names in `ENV_VARS`, as in `env.example`) > the yaml file
(`AXIOM_CONFIG`, default `./config.yaml`) > defaults below.

Nothing below the faces reads `os.environ`: faces call `load_settings()` and pass the result down.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from axiom.config_service import ServiceSettings
from axiom.errors import ConfigError
from axiom.yaml_mapping import load_yaml_mapping

log = logging.getLogger(__name__)

DEFAULT_CONFIG_FILE = "config.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class IngestSettings(_Section):
    max_file_size_mb: float = Field(20.0, gt=0)
    extensions: list[str] = [".txt", ".md", ".pdf"]
    follow_symlinks: bool = False
    # where the chunks are embedded (axiom/distributed/): here, or on the Ray cluster at ray_address (the
    # `ray` extra; `axiom ingest --ray ADDRESS` sets both); reading, hashing and chunking stay on this machine
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(None,
                                    description="a Ray cluster: HOST:PORT of its "
                                                "head, auto, or ray://HOST:PORT")
    ray_actors: int = Field(0, ge=0, le=4096,
                            description="embedding actors; 0: one per ray_cpus_per_actor of the cluster")
    ray_cpus_per_actor: float = Field(1.0, gt=0, le=256,
                                      description="CPUs each actor reserves (its torch threads)")
    ray_batch_size: int = Field(64, gt=0, le=100_000, description="texts per Ray task")


class ChunkingSettings(_Section):
    chunk_size: int = Field(800, gt=0, description="maximum characters per chunk")
    chunk_overlap: int = Field(160, ge=0, description="characters shared by neighbouring chunks")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})"
            )
        return self


class EmbeddingSettings(_Section):
    provider: Literal["local", "openai"] = "local"
    model: str = "all-MiniLM-L6-v2"
    batch_size: int = Field(32, gt=0)
    device: str = "cpu"
    torch_threads: int = Field(0, ge=0, le=256,
                               description="torch's threads for batch work (ingest, eval); 0: one per core")
    # the persistent embedding cache (axiom/embedding_cache.py; `axiom cache stats|clear`)
    cache_enabled: bool = True
    cache_dir: str = Field("", description="empty: `embedding-cache` beside store.path (server: .axiom/...)")
    cache_max_mb: float = Field(1024.0, gt=0, description="least recently used vectors are evicted above it")


class StoreSettings(_Section):
    path: str = ".axiom/chroma"
    host: str | None = None
    port: int = Field(8000, gt=0, lt=65536)
    collection: str = Field("axiom", min_length=3, max_length=512)
    timeout_seconds: float = Field(5.0, gt=0)
    bm25_dir: str = ".axiom/bm25"

    @property
    def mode(self) -> Literal["embedded", "server"]:
        return "server" if self.host else "embedded"


class RetrievalSettings(_Section):
    retriever: Literal["dense", "bm25", "hybrid"] = "hybrid"
    # the one limit of top_k: the CLI's help, the service's request model and the pipeline quote TOP_K_RANGE
    top_k: int = Field(5, ge=1, le=100, description="contexts retrieved and given to the generator")
    candidates: int = Field(100, gt=0, le=1000, description="depth of each ranking fused by hybrid")
    rrf_k: int = Field(60, gt=0)
    dense_weight: float = Field(1.0, ge=0)
    bm25_weight: float = Field(1.0, ge=0)
    bm25_stemmer: str | None = "english"
    bm25_stopwords: str | None = "en"


def field_range(model: type[BaseModel], name: str) -> tuple[Any, Any]:  # boundary: pydantic field metadata
    """The inclusive bounds (`ge`, `le`) of a settings field, None where it has none: help texts and request
    models quote a limit from the field that enforces it instead of restating it."""
    low = high = None
    for constraint in model.model_fields[name].metadata:
        low = getattr(constraint, "ge", low)
        high = getattr(constraint, "le", high)
    return low, high


TOP_K_RANGE: tuple[int, int] = field_range(RetrievalSettings, "top_k")


class GenerationSettings(_Section):
    provider: Literal["openai", "extractive"] | None = None
    model: str = "gpt-4o-mini"
    api_key: SecretStr | None = None
    base_url: str | None = None
    # the LLM's sampling temperature; for the extractive generator, 0 quotes the best sentences
    # (deterministic) and
    # > 0 samples which sentences to quote (a softmax of their cosine similarities divided by it), so repeated
    # runs differ for real (axiom/generation.py); `seed` makes a sampled run reproducible
    temperature: float = Field(0.0, ge=0, le=2)
    seed: int | None = Field(None, ge=0,
                             description="extractive sampling seed (temperature > 0); none: fresh each run")
    max_tokens: int = Field(512, gt=0)
    context_token_budget: int = Field(2000, gt=0)
    timeout_seconds: float = Field(30.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    backoff_initial_seconds: float = Field(0.5, ge=0)
    backoff_max_seconds: float = Field(8.0, ge=0)
    extractive_sentences: int = Field(3, gt=0, le=20)
    # the circuit breaker on the LLM (axiom/breaker.py; `axiom serve` has one per process): this many failed
    # calls within the window open it; while open, answers are extractive (degraded) without calling the LLM;
    # after breaker_open_seconds one trial call is let through, and its success closes it
    breaker_failures: int = Field(5, ge=0,
                                  description="failed LLM calls within the window that open it; 0: off")
    breaker_window_seconds: float = Field(60.0, gt=0)
    breaker_open_seconds: float = Field(30.0, gt=0)

    @property
    def resolved_provider(self) -> Literal["openai", "extractive"]:
        if self.provider:
            return self.provider
        return "openai" if self.api_key and self.api_key.get_secret_value() else "extractive"


class EvaluationSettings(_Section):
    runs_dir: str = "evaluation/runs"
    bootstrap_samples: int = Field(1000, gt=0)
    seed: int = 42
    # comparisons and the gate (axiom/evaluation/verdict.py): significance level after correction, the power
    # at which the minimum detectable effect is stated, the multiplicity correction, sign-flip draws
    alpha: float = Field(0.05, gt=0, lt=1)
    power: float = Field(0.8, gt=0, lt=1)
    correction: Literal["max-t", "holm", "bonferroni"] = "max-t"  # of the secondaries (evaluation/family.py)
    permutations: int = Field(10_000, ge=100, le=1_000_000)
    judge_model: str | None = None
    judge_base_url: str | None = None
    judge_concurrency: int = Field(4, gt=0, le=64)
    judge_cache_dir: str = ".axiom/judge-cache"
    span_cache_dir: str = ".axiom/span-cache"
    judge_timeout_seconds: float = Field(60.0, gt=0)
    prices_per_million_tokens: dict[str, dict[str, float]] = {}


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["auto", "json", "text"] = Field("auto", description="auto: text on a terminal, else JSON")
    file: str | None = None


class PIISettings(_Section):
    """Emails, phone numbers, card numbers and US SSNs are always redacted from logged questions."""

    redact_llm_input: bool = Field(False, description="also redact them from what is sent to the LLM")


class Settings(BaseModel):
    """Every setting Axiom reads. A plain validated model: it never reads a file or the environment by itself.

    `load_settings` is the one merge of the sources (yaml file, environment variables in `ENV_VARS`, a face's
    overrides), done by hand rather than with pydantic-settings sources so that every error names the file or
    environment variable its value came from; `with_overrides` layers a face's overrides on a built copy."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)

    ingest: IngestSettings = IngestSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    embeddings: EmbeddingSettings = EmbeddingSettings()
    store: StoreSettings = StoreSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    generation: GenerationSettings = GenerationSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    logging: LoggingSettings = LoggingSettings()
    service: ServiceSettings = ServiceSettings()
    pii: PIISettings = PIISettings()

    def with_overrides(self, overrides: Mapping[str, object], *, origin: str) -> Settings:
        """A validated copy with `overrides` applied; this object is left as it is.

        `overrides` maps `section.key` (or a section to a mapping of its keys) to a value; None leaves a
        setting alone. `origin` names where they came from (`--top-k`, `notebook parameter top_k`, `request`):
        an invalid value raises ConfigError naming the setting and that origin."""
        data = self.model_dump()
        where: dict[tuple[str, ...], str] = {}
        for name, value in overrides.items():
            section, _, key = str(name).partition(".")
            items = value.items() if not key and isinstance(value, Mapping) else [(key, value)]
            for sub, sub_value in items:
                if sub_value is None:
                    continue
                if not sub:
                    raise ConfigError(f"override {name!r} (from {origin}) must name a setting as section.key")
                if section not in data or not isinstance(data[section], dict):
                    raise ConfigError(f"unknown settings section {section!r} (from {origin}); "
                                      f"known: {', '.join(sorted(data))}")
                data[section][sub] = sub_value
                where[(section, sub)] = origin
        if not where:
            return self
        try:
            return type(self)(**data)
        except ValidationError as exc:
            raise ConfigError("; ".join(_describe(e, where) for e in exc.errors())) from None

    def anchored(self, root: str | os.PathLike[str]) -> Settings:
        """A copy with the relative `PATH_FIELDS` absolute against the project folder `root` (with a ChromaDB
        server, the embedding cache's `.axiom/embedding-cache` named too): no working directory needed."""
        base, data = Path(root), self.model_dump()
        values = {name: data[name.split(".")[0]][name.split(".")[1]] for name in PATH_FIELDS}
        overrides = {name: str(base / v) for name, v in values.items() if v and not Path(v).is_absolute()}
        if not self.embeddings.cache_dir and self.store.mode == "server":
            overrides["embeddings.cache_dir"] = str(base / self.embedding_cache_dir)
        return self.with_overrides(overrides, origin=f"the project folder {base}")

    @property
    def embedding_cache_dir(self) -> Path:
        """The persistent embedding cache's folder: `embeddings.cache_dir`, or when empty `embedding-cache`
        beside an embedded store (`.axiom/chroma` -> `.axiom/embedding-cache`), `.axiom/embedding-cache` with
        a ChromaDB server."""
        if self.embeddings.cache_dir:
            return Path(self.embeddings.cache_dir)
        if self.store.mode == "server":
            return Path(".axiom", "embedding-cache")
        return Path(self.store.path).parent / "embedding-cache"

    def redacted(self) -> dict[str, Any]:
        """Settings as plain JSON, secrets masked (for run manifests and logs): keys as `***`, and the
        endpoint URLs without the credentials they may carry (`user:pass@`, `?api-key=...`)."""
        from axiom.redaction import redact_url

        data = self.model_dump(mode="json")
        key = data["generation"].get("api_key")
        data["generation"]["api_key"] = "***" if key else None
        data["generation"]["base_url"] = redact_url(data["generation"].get("base_url"))
        data["evaluation"]["judge_base_url"] = redact_url(data["evaluation"].get("judge_base_url"))
        return data


# the settings that name a file or folder: relative to the working folder, or anchored (`Settings.anchored`)
PATH_FIELDS = ("store.path", "store.bm25_dir", "embeddings.cache_dir", "evaluation.runs_dir",
               "evaluation.judge_cache_dir", "evaluation.span_cache_dir", "logging.file", "service.data_root")

# Environment variable -> (section, key). Names follow env.example.
ENV_VARS: dict[str, tuple[str, str]] = {
    "OPENAI_API_KEY": ("generation", "api_key"),
    "OPENAI_BASE_URL": ("generation", "base_url"),
    "LLM_PROVIDER": ("generation", "provider"),
    "LLM_MODEL": ("generation", "model"),
    "EMBEDDING_PROVIDER": ("embeddings", "provider"),
    "EMBEDDING_MODEL": ("embeddings", "model"),
    "EMBEDDING_CACHE_ENABLED": ("embeddings", "cache_enabled"),
    "LOG_LEVEL": ("logging", "level"),
    "LOG_FORMAT": ("logging", "format"),
    "LOG_FILE": ("logging", "file"),
    "CHROMA_PATH": ("store", "path"),
    "CHROMA_HOST": ("store", "host"),
    "CHROMA_PORT": ("store", "port"),
    "AXIOM_COLLECTION": ("store", "collection"),
    "AXIOM_INGEST_EXECUTOR": ("ingest", "executor"),
    "AXIOM_RAY_ADDRESS": ("ingest", "ray_address"),
    "EVAL_LLM_MODEL": ("evaluation", "judge_model"),
    "EVAL_LLM_BASE_URL": ("evaluation", "judge_base_url"),
    "AXIOM_API_KEYS": ("service", "api_keys"),
    "AXIOM_REQUEST_TIMEOUT_SECONDS": ("service", "request_timeout_seconds"),
    "AXIOM_MAX_CONCURRENT_REQUESTS": ("service", "max_concurrent_requests"),
}


def _deep_merge(base: dict[str, Any], extra: Mapping[str, object]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    return load_yaml_mapping(path, what="config file", expected="a mapping of sections",
                             hint="set AXIOM_CONFIG")


def _known_keys(section: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = Settings
    for part in section:
        field = model.model_fields.get(part)
        if field is None or not isinstance(field.annotation,
                                           type) or not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return sorted(model.model_fields)


def _describe(error: ErrorDetails, origin: dict[tuple[str, ...], str]) -> str:
    loc = tuple(str(p) for p in error["loc"])
    key = ".".join(loc) or "(settings)"
    where = origin.get(loc[:2], "")
    # a check across a section's keys (chunk_overlap vs chunk_size): their sources
    if not where and len(loc) == 1:
        where = ", ".join(sorted({src for k, src in origin.items() if k[:1] == loc}))
    name = f"{key} (from {where})" if where else key
    value = error.get("input")
    if error["type"] == "extra_forbidden":
        allowed_keys = _known_keys(loc[:-1])
        close = difflib.get_close_matches(loc[-1], allowed_keys, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown setting {name}; {hint}allowed here: {', '.join(allowed_keys)}"
    allowed = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "literal_error":
        allowed = "expected " + error["ctx"]["expected"]
    shown = "***" if "api_key" in loc or "api_keys" in loc else repr(value)
    if isinstance(value, dict):
        return f"invalid setting {name}: {allowed}"
    return f"invalid setting {name}={shown}: {allowed}"


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Build the settings from yaml + environment + overrides. Raises ConfigError naming every bad key."""
    env = os.environ if environ is None else environ
    path_value = config_path or env.get("AXIOM_CONFIG")
    data: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    if path_value:
        path = Path(path_value)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist", hint="fix AXIOM_CONFIG or --config")
        data = _read_yaml(path)
    elif Path(DEFAULT_CONFIG_FILE).is_file():
        path = Path(DEFAULT_CONFIG_FILE)
        data = _read_yaml(path)
    else:
        path = None
    if path is not None:
        for section, values in data.items():
            for key in values if isinstance(values, dict) else ():
                origin[(section, key)] = str(path)

    env_data: dict[str, dict[str, Any]] = {}
    for name, (section, key) in ENV_VARS.items():
        value = env.get(name)
        if value is None or value == "":
            continue
        env_data.setdefault(section, {})[key] = value
        origin[(section, key)] = f"environment variable {name}"
    data = _deep_merge(data, env_data)
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = [_describe(e, origin) for e in exc.errors()]
        raise ConfigError("; ".join(problems)) from None


def log_generator_choice(settings: Settings) -> None:
    """Log, once at the face, which generator answers and why."""
    gen = settings.generation
    if gen.provider:
        log.info("generator: %s (LLM_PROVIDER/generation.provider)", gen.provider)
    elif gen.resolved_provider == "openai":
        log.info("generator: openai (OPENAI_API_KEY is set; model %s)", gen.model)
    else:
        log.info("generator: extractive (no OPENAI_API_KEY set; answers quote the retrieved sources)")
