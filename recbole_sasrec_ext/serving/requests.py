"""Checked request bodies (stdin JSON lines and HTTP): types, bounds, one clear message."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Bounds on one request (the server rejects more with a 4xx)."""

    max_tokens: int = 10_000  # tokens of one sequence (only the last max_seq_length are read)
    max_candidates: int = 100_000
    max_k: int = 1_000
    max_batch: int = 256  # sequences in one HTTP request
    max_body_bytes: int = 1 << 20


LIMITS = Limits()


@dataclass
class Body:
    """One recommendation request."""

    sequence: list[str]
    k: int
    candidates: list[str] | None
    exclude_seen: bool


def _tokens(value: object, key: str, bound: int) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"'{key}' must be a list of item tokens, got {type(value).__name__}")
    if len(value) > bound:
        raise ValueError(f"'{key}' has {len(value)} tokens, more than the limit {bound}")
    for token in value:
        if isinstance(token, bool) or not isinstance(token, (str, int)):
            raise ValueError(f"'{key}' must hold strings or integers, got "
                             f"{type(token).__name__}")
    return [str(t) for t in value]


def parse_request(body: object, limits: Limits = LIMITS, default_k: int = 10,
                  default_exclude: bool = True) -> Body:
    """A :class:`Body` from decoded JSON: ``{"sequence": [...], "k": 10, "candidates": [...],
    "exclude_seen": true}`` or a bare list of tokens. Raises ``ValueError`` with one line."""
    if isinstance(body, list):
        body = {"sequence": body}
    if not isinstance(body, dict):
        raise ValueError(f"a request must be a JSON object or list, got {type(body).__name__}")
    unknown = sorted(set(body) - {"sequence", "k", "candidates", "exclude_seen"})
    if unknown:
        raise ValueError(f"unknown key '{unknown[0]}' (keys: sequence, k, candidates, "
                         "exclude_seen)")
    if "sequence" not in body:
        raise ValueError("missing key 'sequence'")
    k = body.get("k", default_k)
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"'k' must be an integer, got {type(k).__name__}")
    if not 1 <= k <= limits.max_k:
        raise ValueError(f"'k' must be in [1, {limits.max_k}], got {k}")
    exclude = body.get("exclude_seen", default_exclude)
    if not isinstance(exclude, bool):
        raise ValueError("'exclude_seen' must be true or false")
    candidates = body.get("candidates")
    if candidates is not None:
        candidates = _tokens(candidates, "candidates", limits.max_candidates)
    return Body(_tokens(body["sequence"], "sequence", limits.max_tokens), k, candidates, exclude)
