"""The mapping between a golden item and a RAG system's HTTP API (`axiom eval --endpoint URL --endpoint-config
FILE.yaml`): how to ask a question and where the answer, contexts and retrieved sources are in the JSON reply.

    url: https://rag.example.com/ask     # --endpoint URL overrides it
    method: POST                         # POST (JSON body), PUT, or GET (the body's keys become query
    parameters) body:                                # the request template: "{question}", "{id}" and
    "{top_k}" are filled in;
      question: "{question}"             #   a value that is exactly "{top_k}" becomes the number (the key is
      left top_k: "{top_k}"                   #   out when the run has no top_k)
    headers:                             # values may take environment variables: ${NAME} (must be set) or
      Authorization: "Bearer ${RAG_TOKEN}"   # ${NAME:-default}; a header whose value ends up empty is not
      sent
    headers_from_env:                    # or: header -> the name of the environment variable holding its
    value
      X-API-Key: RAG_API_KEY
    response:                            # where things are in the reply: dotted paths (`data.answer`,
      answer: answer                     #   `contexts[].text` for a field of every element, `hits[0].id`) or
      contexts: contexts[].text          #   JSON pointers (`/data/answer`, `/contexts/*/text`)
      retrieved: contexts[].source       # optional: source ids in rank order (retrieval metrics)
      retrieved_contexts: hits[].text    # optional: ranked passages deeper than the contexts (evidence
      metrics) latency_ms: took_ms                # optional: the system's own latency (else the measured wall
      time); usage: usage                       #   or latency_seconds; usage: an object of token counts
    concurrency: 4                       # requests in flight at once
    timeout_seconds: 30                  # per request: connect, each read, and the whole reply (checked
    between
                                         #   chunks; a silent server is cut by the read timeout)
    max_reply_bytes: 16777216            # a larger reply (declared or streamed) is that item's failure (16
    MiB) retries: 2                           # on timeouts, connection errors, 429 and 5xx (Retry-After
    honoured) backoff_initial_seconds: 0.5
    backoff_max_seconds: 8
    trust_env: true                      # proxies from HTTP(S)_PROXY / NO_PROXY

Without a file the mapping is the responses-file shape, which is also Axiom's own `POST /query` reply:
`{"question": ...}` in, `answer`, `contexts` and `retrieved` (source ids in rank order) out. Contexts (and
retrieved_contexts) may be strings or objects holding a `text` string (Axiom's contexts are such objects).
`answer` (and `contexts` when mapped) must be in every reply; a reply without them is a failure of that item.
Header values are secrets: they are resolved here from the environment the face passes in, kept out of `repr`,
the manifest and the logs (the manifest names the headers only); a value that is not printable ASCII (a
non-ASCII character, a control character such as a newline) is a problem naming the header and where its value
came from, never the value or any character of it. Every problem of a file is reported at once (`ConfigError`,
exit code 2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axiom.errors import ConfigError
from axiom.evaluation.datasets import file_sha256
from axiom.redaction import redact_url
from axiom.yaml_mapping import load_yaml_mapping

WILDCARD = object()
Segment = str | int | object
FIELDS = ("answer", "contexts", "retrieved", "retrieved_contexts", "latency_ms", "latency_seconds", "usage")
REQUIRED_IN_REPLY = ("answer", "contexts")  # when mapped
KNOWN = {"url", "method", "body", "headers", "headers_from_env", "response", "concurrency", "timeout_seconds",
         "max_reply_bytes", "retries", "backoff_initial_seconds", "backoff_max_seconds", "trust_env"}
MAX_REPLY_BYTES = 16 << 20
DEFAULT_RESPONSE = {"answer": "answer", "contexts": "contexts", "retrieved": "retrieved"}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DOTTED = re.compile(r"([^.\[\]]+)|\[(\*|\d*)\]")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 9110 token
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")  # printable ASCII, space and tab (what httpx can send)


class MissingField(LookupError):
    """The reply has nothing at a mapped path."""


def parse_path(path: str) -> list[Segment]:
    """A dotted path (`a.b[0].c`, `contexts[].text`, `a.0.b`) or a JSON pointer (`/a/b/0`, `/contexts/*/text`)
    as segments: keys, list indexes (digits; a key for an object) and WILDCARD (every element of a list)."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError("a path must be a non-empty string")
    if path.startswith("/"):
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]
        return [WILDCARD if p == "*" else p for p in parts]
    out: list[Segment] = []
    for part in path.split("."):
        pos = 0
        if not part:
            raise ValueError(f"empty segment in {path!r}")
        for m in _DOTTED.finditer(part):
            if m.start() != pos:
                raise ValueError(f"cannot read {part!r} in {path!r}")
            pos = m.end()
            if m.group(1) is not None:
                out.append(m.group(1))
            else:
                out.append(WILDCARD if m.group(2) in ("", "*") else int(m.group(2)))
        if pos != len(part):
            raise ValueError(f"cannot read {part!r} in {path!r}")
    return out


def extract(doc: Any, segments: list[Segment], shown: str) -> Any:  # boundary: JSON values
    """The value at `segments` in a parsed JSON reply; WILDCARD maps the rest over a list. MissingField names
    the path when something is not there."""
    value = doc
    for i, seg in enumerate(segments):
        if seg is WILDCARD:
            if not isinstance(value, list):
                raise MissingField(f"no list at {shown!r}")
            return [extract(v, segments[i + 1:], shown) for v in value]
        if isinstance(value, list) and (isinstance(seg, int) or (isinstance(seg, str) and seg.isdigit())):
            index = int(seg)
            if index >= len(value):
                raise MissingField(f"nothing at {shown!r}")
            value = value[index]
        elif isinstance(value, dict) and str(seg) in value:
            value = value[str(seg)]
        else:
            raise MissingField(f"nothing at {shown!r}")
    return value


def render(template: Any, *, question: str, item_id: str,  # boundary: a JSON template
           top_k: int | None) -> Any:  # boundary: the JSON body it makes
    """The request body (or query parameters) for one question. `{question}`, `{id}`, `{top_k}` are replaced
    in strings by plain substitution (other braces are left alone); a value that is exactly "{top_k}" becomes
    the number, and its key is left out when there is no top_k."""
    if isinstance(template, dict):
        return {k: render(v, question=question, item_id=item_id, top_k=top_k) for k, v in template.items()
                if not (v == "{top_k}" and top_k is None)}
    if isinstance(template, list):
        return [render(v, question=question, item_id=item_id, top_k=top_k) for v in template]
    if isinstance(template, str):
        if template == "{top_k}" and top_k is not None:
            return top_k
        text = template.replace("{question}", question).replace("{id}", item_id)
        return text.replace("{top_k}", str(top_k)) if top_k is not None else text
    return template


@dataclass(frozen=True)
class EndpointConfig:
    url: str
    method: str = "POST"
    body: Any = field(default_factory=lambda: {"question": "{question}"})  # boundary: a JSON template
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # resolved values: secrets
    response: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RESPONSE))
    concurrency: int = 4
    timeout_seconds: float = 30.0
    max_reply_bytes: int = MAX_REPLY_BYTES
    retries: int = 2
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 8.0
    trust_env: bool = True
    config_path: str | None = None
    config_sha256: str | None = None

    @property
    def uses_top_k(self) -> bool:
        return "{top_k}" in repr(self.body)

    def paths(self) -> dict[str, list[Segment]]:
        return {name: parse_path(path) for name, path in self.response.items()}

    def describe(self) -> dict[str, Any]:
        """For the manifest: the URL without credentials or query, the mapping, the header names (never
        values)."""
        return {"url": redact_url(self.url), "method": self.method, "config": self.config_path,
                "config_sha256": self.config_sha256, "body": self.body, "headers": sorted(self.headers),
                "response": dict(self.response), "concurrency": self.concurrency,
                "timeout_seconds": self.timeout_seconds, "max_reply_bytes": self.max_reply_bytes,
                "retries": self.retries,
                "backoff_initial_seconds": self.backoff_initial_seconds,
                "backoff_max_seconds": self.backoff_max_seconds}


def header_problems(headers: Mapping[str, str], origins: Mapping[str, str] | None = None) -> list[str]:
    """What is wrong with header names and resolved values, naming the header (and where its value came from,
    `origins`) but never the value or any character of it."""
    problems = []
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            problems.append(f"headers: {name.encode('ascii', 'backslashreplace').decode()!r} is not a valid "
                            "header name (letters, digits and !#$%&'*+-.^_`|~)")
        elif not _HEADER_VALUE.fullmatch(value):
            where = (origins or {}).get(name)
            problems.append(f"headers.{name}: the value{f' (from {where})' if where else ''} holds a "
                            "character that is not printable ASCII (a non-ASCII letter or a control "
                            "character such as a newline); a header value must be ASCII letters, "
                            "digits, punctuation and spaces")
    return problems


def _origin(value: object) -> str | None:
    names = [m.group(1) for m in _ENV.finditer(str(value))]
    return f"environment variable{'s' if len(names) > 1 else ''} {', '.join(names)}" if names else None


def _resolve_header(name: str, value: object, environ: Mapping[str, str], problems: list[str]) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        problems.append(f"headers.{name}: expected a string, got {type(value).__name__}")
        return ""

    def sub(m: re.Match[str]) -> str:
        var, default = m.group(1), m.group(2)
        if environ.get(var) not in (None, ""):
            return str(environ[var])
        if default is None:
            problems.append(f"headers.{name}: environment variable {var} is not set")
            return ""
        return default

    return _ENV.sub(sub, str(value)).strip()


def _number(data: Mapping[str, Any],  # boundary: the YAML mapping
            key: str, default: float, problems: list[str], *, integer: bool,
            minimum: float, strict: bool = False) -> Any:  # boundary: the YAML number (int or float)
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value,
                                                 (int, float)) or (integer and not isinstance(value, int)):
        problems.append(f"{key}: expected {'an integer' if integer else 'a number'}, got {value!r}"[:160])
        return default
    if value < minimum or (strict and value == minimum):
        problems.append(f"{key}: must be {'above' if strict else 'at least'} {minimum:g}, got {value}")
        return default
    return value


def _read(path: Path) -> dict[str, Any]:
    return load_yaml_mapping(path, what="endpoint config",
                             expected="a mapping (url, body, headers, response, ...)")


def load_endpoint_config(path: str | Path | None = None, *, url: str | None = None,
                         environ: Mapping[str, str] | None = None) -> EndpointConfig:
    """The endpoint mapping from a YAML file (or the default mapping without one); `url` (`--endpoint`)
    overrides the file's. Header values are resolved from `environ` (the face passes os.environ). Raises
    ConfigError naming every problem."""
    data = _read(Path(path)) if path is not None else {}
    environ = environ or {}
    problems = [f"unknown key {k!r}; allowed: {', '.join(sorted(KNOWN))}" for k in sorted(set(data) - KNOWN)]
    target = url or data.get("url")
    if not isinstance(target, str) or not re.match(r"^https?://[^/\s]+", target or ""):
        problems.append("url: expected an http:// or https:// URL, got "
                        f"{redact_url(str(target)) if target else 'none'}"
                        + ("" if target else " (give --endpoint URL or url: in the file)"))
    method = str(data.get("method", "POST")).upper()
    if method not in ("POST", "PUT", "GET"):
        problems.append(f"method: expected POST, PUT or GET, got {method}")
    body = data.get("body", {"question": "{question}"})
    if not isinstance(body, (dict, list, str)) or "{question}" not in repr(body):
        problems.append("body: expected a template (an object, list or string) holding \"{question}\"")
    elif method == "GET" and not isinstance(body, dict):
        problems.append("body: with method GET the body must be an object (its keys become query parameters)")
    headers: dict[str, str] = {}
    origins: dict[str, str] = {}
    for section, by_env in (("headers", False), ("headers_from_env", True)):
        given = data.get(section) or {}
        if not isinstance(given, dict):
            problems.append(f"{section}: expected an object of header name -> value")
            continue
        for name, value in given.items():
            if by_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(value)):
                problems.append(f"headers_from_env.{name}: expected the name of an environment variable")
                continue
            template = "${" + str(value) + "}" if by_env else value
            resolved = _resolve_header(str(name), template, environ, problems)
            if resolved:
                headers[str(name)] = resolved
                origins[str(name)] = _origin(template) or "the file"
    problems.extend(header_problems(headers, origins))
    response = data.get("response", DEFAULT_RESPONSE)
    if not isinstance(response, dict):
        problems.append("response: expected an object of field -> path")
        response = {}
    for name, where in response.items():
        if name not in FIELDS:
            problems.append(f"response.{name}: unknown field; allowed: {', '.join(FIELDS)}")
            continue
        try:
            parse_path(where)
        except ValueError as exc:
            problems.append(f"response.{name}: {exc}")
    if "answer" not in response:
        problems.append("response.answer: required (where the answer is in the reply)")
    if "latency_ms" in response and "latency_seconds" in response:
        problems.append("response: give latency_ms or latency_seconds, not both")
    numbers = {key: _number(data, key, default, problems, integer=integer, minimum=minimum,
                            strict=key == "timeout_seconds")
               for key, default, integer, minimum in (("concurrency", 4, True, 1),
                                                      ("timeout_seconds", 30.0, False, 0),
                                                      ("max_reply_bytes", MAX_REPLY_BYTES, True, 1),
                                                      ("retries", 2, True, 0),
                                                      ("backoff_initial_seconds", 0.5, False, 0),
                                                      ("backoff_max_seconds", 8.0, False, 0))}
    if not isinstance(data.get("trust_env", True), bool):
        problems.append("trust_env: expected true or false")
    if problems:
        where = f"endpoint config {path}" if path is not None else "endpoint"
        raise ConfigError(f"{where}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems),
                          hint="see evaluation/README.md, 'Evaluating any RAG system'")
    return EndpointConfig(url=str(target), method=method, body=body, headers=headers,
                          response={str(k): str(v) for k, v in response.items()},
                          trust_env=bool(data.get("trust_env", True)),
                          config_path=str(path) if path is not None else None,
                          config_sha256=file_sha256(path) if path is not None else None, **numbers)
