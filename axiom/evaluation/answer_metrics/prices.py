"""Token prices (`evaluation.prices_per_million_tokens`, per model) and what a run's tokens cost."""

from __future__ import annotations

from axiom.config import Settings


def price_for(settings: Settings, model: str) -> dict[str, float] | None:
    """{"input": x, "output": y} in USD per million tokens for `model`, or None when the table has no entry
    (the keys `prompt` / `completion` are accepted too)."""
    table = settings.evaluation.prices_per_million_tokens or {}
    entry = table.get(model)
    if not entry:
        return None
    return {"input": float(entry.get("input", entry.get("prompt", 0.0))),
            "output": float(entry.get("output", entry.get("completion", 0.0)))}


def cost_usd(prices: dict[str, float] | None, prompt_tokens: int, completion_tokens: int) -> float | None:
    if not prices:
        return None
    return round(prompt_tokens / 1e6 * prices["input"] + completion_tokens / 1e6 * prices["output"], 6)
