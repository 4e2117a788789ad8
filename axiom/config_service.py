"""The `service` section of the settings (`axiom serve`: the API and the health + metrics sidecar).

Split from `axiom.config` (which re-exports it) to keep that module short; part of the foundation floor.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class ServiceSettings(BaseModel):
    """`axiom serve`: the API (query, ingest) and the health + metrics sidecar."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    api_keys: list[SecretStr] = Field(default_factory=list,
                                      description="empty: the API is open (a warning is logged)")
    min_api_key_chars: int = Field(16, ge=1,
                                   description="`axiom serve` refuses shorter keys in AXIOM_API_KEYS")
    torch_threads: int = Field(0, ge=0, le=256,
                               description="torch's threads in the service (one encode at a time, beside "
                                           "the request threads); 0: one per core")
    host: str = "127.0.0.1"
    sidecar_port: int = Field(5000, gt=0, lt=65536)
    api_port: int = Field(8000, gt=0, lt=65536)
    data_root: str = Field("data",
                           description="POST /ingest only accepts folders and files under this folder")
    max_question_chars: int = Field(4000, gt=0)
    max_body_bytes: int = Field(1_048_576, gt=0)
    cors_origins: list[str] = Field(default_factory=list, description="empty: CORS is off")
    cache_size: int = Field(256, ge=0, description="query cache entries; 0 turns the cache off")
    cache_ttl_seconds: float = Field(300.0, gt=0)
    health_timeout_seconds: float = Field(2.0, gt=0)
    shutdown_grace_seconds: float = Field(8.0, ge=0,
                                          description="in-flight requests get this long on SIGTERM")
    request_timeout_seconds: float = Field(
        60.0, gt=0,
        description="a /query's time budget: the LLM's attempts and back-off stop when it runs out and the "
                    "answer is extractive, flagged degraded")
    max_concurrent_requests: int = Field(
        64, gt=0, le=1000,
        description="/query and /ingest in flight at once; one more is refused at "
                    "once with 503 and Retry-After")
    retry_after_seconds: int = Field(2, gt=0, le=3600, description="the Retry-After of a 503 for overload")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> list[str]:
        # AXIOM_API_KEYS is comma-separated; blanks are dropped. The value is never echoed in an error.
        if value is None:
            return []
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, (list, tuple)):
            raise ValueError("expected a comma-separated string or a list of keys")
        keys = [v.get_secret_value() if isinstance(v, SecretStr) else v for v in value]
        if not all(isinstance(k, str) for k in keys):
            raise ValueError("every API key must be a string")
        return [k.strip() for k in keys if k.strip()]

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value or []
