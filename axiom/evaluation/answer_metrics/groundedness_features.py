"""What the groundedness metric measures of an answer against its contexts, before any fitted weight.

- Claims: the answer split into sentences and list items, each with its character offsets into the answer
  (list markers left out), and whether it is a meta claim (about the passages, a refusal) rather than a claim
  about the world.
- Per claim: its best cosine (MiniLM sentence vectors, pooled from word pieces) to any context sentence and to
  any window of 2-3 consecutive context sentences or a whole passage segment; its token-alignment precision
  (BERTScore-style: each content word piece of the claim, its best cosine to any context word piece,
  averaged); its content words, numbers and capitalised terms absent from the contexts; conflict cues against
  the best-matching context sentence (a number it lacks while it has others; a negation on one side only).
- Per answer: aggregates of those (worst and mean claim, shares below thresholds) and cheap cues (length,
  claim count, mentions of the passages, refusals, hedges).

The model runs once per answer: one `token_vectors` batch of the claims and the contexts' segments.
"""

from __future__ import annotations

import math
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple, Protocol, SupportsFloat, cast

import numpy as np

from axiom.embeddings import Embedder
from axiom.errors import EvaluationError
from axiom.local_embedder import TokenVectors

MEASURES_VERSION = 2

_LIST_MARKER = re.compile(r"\s*(?:\(?\d{1,2}[.)]|[-*\u2022])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATION = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|vs|etc|e\.g|i\.e|[A-Z])\.$")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-zA-Z]+")
_META = re.compile(r"\b(passages?|context|provided (?:text|information)|based on the (?:given|provided))\b",
                   re.I)
_REFUSAL = re.compile(r"\b(unable to answer|cannot answer|can't answer"
                      r"|not (?:possible|able) to (?:answer|determine)"
                      r"|does not (?:mention|provide|say|specify|contain)|do not (?:mention|provide|specify)"
                      r"|no (?:information|mention)|not mentioned|insufficient information)\b", re.I)
_HEDGE = re.compile(r"\b(may|might|could|possibly|likely|generally|typically|usually|often|some|approximately"
                    r"|around|about)\b", re.I)
_NEGATION = re.compile(r"\b(not|no|never|none|cannot|without|neither|nor)\b|n't\b", re.I)
_ADDITION = re.compile(r"\b(additionally|furthermore|moreover|in addition|also|overall|in summary|however)\b",
                       re.I)

STOPWORDS = frozenset("""a about above after again against all also am an and any are as at be because been \
before
being below between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most my \
myself no
nor not now of off on once only or other our ours ourselves out over own same she should so some such than \
that
the their theirs them themselves then there these they this those through to too under until up very was we \
were
what when where which while who whom why will with would you your yours yourself yourselves may might must \
shall
one two also however based provided passage passages according mentioned mentions information answer question
there's it's that's""".split())


@dataclass(frozen=True)
class Claim:
    text: str
    start: int
    end: int
    meta: bool  # about the passages or a refusal, not a claim about the world


@dataclass
class ClaimMeasures:
    claim: Claim
    mentions_passages: bool = False
    sim_sentence: float = 0.0  # best cosine to a context sentence
    sim_window: float = 0.0  # best cosine to a window of 1-3 context sentences or a whole passage
    token_precision: float = 0.0  # content word pieces' mean best cosine to the contexts' word pieces
    content_words: int = 0
    novel_words: int = 0
    novel_numbers: int = 0
    novel_terms: int = 0
    number_conflict: int = 0
    negation_conflict: int = 0

    @property
    def novel_share(self) -> float:
        return self.novel_words / self.content_words if self.content_words else 0.0


@dataclass
class AnswerMeasures:
    answer: str
    context_chars: int
    claims: list[ClaimMeasures] = field(default_factory=list)


def split_claims(answer: str) -> list[Claim]:
    """Sentences and list items of `answer` with their offsets (`answer[c.start:c.end] == c.text`)."""
    claims: list[Claim] = []
    pos = 0
    for line in answer.split("\n"):
        line_start, pos = pos, pos + len(line) + 1
        marker = _LIST_MARKER.match(line)
        offset = marker.end() if marker else len(line) - len(line.lstrip())
        body = line[offset:]
        cuts = [0, *(m.end() for m in _SENTENCE_END.finditer(body)
                     if not _ABBREVIATION.search(body, 0, m.start())), len(body)]
        for a, b in zip(cuts, cuts[1:], strict=False):
            piece = body[a:b]
            text = piece.strip()
            if len(_WORD.findall(text)) < 2:
                continue
            start = line_start + offset + a + (len(piece) - len(piece.lstrip()))
            claims.append(Claim(text, start, start + len(text),
                                bool(text.endswith(":") or _REFUSAL.search(text))))
    return claims


def context_segments(contexts: Sequence[str], max_chars: int = 900) -> list[str]:
    """The contexts cut at sentence ends into pieces the model reads whole (its 256 word pieces)."""
    segments: list[str] = []
    for context in contexts:
        text = " ".join(context.split())
        while len(text) > max_chars:
            cut = max((m.end() for m in _SENTENCE_END.finditer(text, 0, max_chars)), default=0) or max_chars
            segments.append(text[:cut].strip())
            text = text[cut:].strip()
        if text:
            segments.append(text)
    return segments


def _pooled(tokens: _Segment) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A segment's sentences, their vectors and their 2-3 sentence windows' and the whole segment's vectors
    (mean of the word pieces inside, as the model pools a sentence), all normalised."""
    inner = slice(1, len(tokens.pieces) - 1)
    offsets, vectors = tokens.offsets[inner], tokens.vectors[inner]
    cumulative = np.vstack([np.zeros((1, vectors.shape[1]), np.float32), np.cumsum(vectors, axis=0)])
    spans = []
    for c in split_claims(tokens.text):
        a, b = np.searchsorted(offsets[:, 0], c.start), np.searchsorted(offsets[:, 0], c.end)
        if b > a:
            spans.append((c.text, int(a), int(b)))
    if not spans:
        return [], np.zeros((0, vectors.shape[1]), np.float32), np.zeros((0, vectors.shape[1]), np.float32)
    def mean(a: int, b: int) -> np.ndarray:
        pooled: np.ndarray = (cumulative[b] - cumulative[a]) / (b - a)
        return pooled
    sentences = np.asarray([mean(a, b) for _, a, b in spans])
    windows = [mean(spans[i][1], spans[i + size - 1][2])
               for size in (2, 3) for i in range(len(spans) - size + 1)]
    windows.append(mean(0, len(vectors)))
    return [t for t, _, _ in spans], _normalise(sentences), _normalise(np.asarray(windows))


@lru_cache(maxsize=1)
def _stemmer() -> Any:  # boundary: PyStemmer (untyped), the stemmer the BM25 index uses too
    import Stemmer

    return Stemmer.Stemmer("english")


def content_stems(text: str) -> list[str]:
    words = [w.lower().strip("'-") for w in _WORD.findall(text)]
    words = [w for w in words if len(w) > 2 and w not in STOPWORDS]
    stems: list[str] = _stemmer().stemWords(words)
    return stems


def numbers(text: str) -> set[str]:
    return {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}


def capitalised_terms(text: str) -> set[str]:
    return {t.lower() for t in _CAPITALISED.findall(text) if t.lower() not in STOPWORDS}


def _content_piece(piece: str) -> bool:
    word = piece[2:] if piece.startswith("##") else piece
    return any(ch.isalnum() for ch in word) and (piece.startswith("##") or word not in STOPWORDS)


def _token_precision(claim: TokenVectors, context_vectors: np.ndarray) -> float:
    keep = [i for i, p in enumerate(claim.pieces) if _content_piece(p)]
    if not keep or not len(context_vectors):
        return 0.0
    return float((_normalise(claim.vectors[keep]) @ context_vectors.T).max(axis=1).mean())


class _Segment(NamedTuple):
    text: str
    tokens: TokenVectors

    @property
    def pieces(self) -> list[str]:
        return self.tokens.pieces

    @property
    def offsets(self) -> np.ndarray:
        return self.tokens.offsets

    @property
    def vectors(self) -> np.ndarray:
        return self.tokens.vectors


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


class TokenModel(Protocol):
    """An embedder that gives word-piece vectors (the local MiniLM)."""

    def token_vectors(self, texts: Sequence[str]) -> list[TokenVectors]: ...


def token_model(embedder: Embedder) -> TokenModel:
    """The model behind `embedder` (unwrapping a CachingEmbedder) that gives word-piece vectors."""
    model = embedder
    while not callable(getattr(model, "token_vectors", None)) and getattr(model, "inner", None) is not None:
        model = model.inner  # type: ignore[attr-defined]
    if not callable(getattr(model, "token_vectors", None)):
        raise EvaluationError(f"groundedness needs word-piece vectors; embedder {embedder.model_id!r} has "
                              "none",
                              hint="use the local MiniLM (embeddings.provider: local)")
    return cast(TokenModel, model)  # checked just above: it has a callable token_vectors


class TokenVectorMemo:
    """Word-piece vectors by text: each distinct text (a claim, a context segment: the same chunks come back
    for many questions, and for every repetition of a run) is encoded once, in batches; at most `max_bytes` of
    vectors are kept, the least recently used dropped first. Vectors do not depend on the batch a text is
    encoded in (attention masks). `token_vector_memo` gives the one that lives as long as an embedder."""

    def __init__(self, model: TokenModel, max_bytes: int = 256 << 20) -> None:
        self.model, self.max_bytes, self.bytes = model, max_bytes, 0
        self._by_text: OrderedDict[str, TokenVectors] = OrderedDict()
        self._lock = threading.RLock()  # evaluations in threads may share one (`token_vector_memo`)

    def prime(self, texts: Sequence[str]) -> None:
        with self._lock:
            for text in dict.fromkeys(t for t in texts if t in self._by_text):
                self._by_text.move_to_end(text)  # used now: the last to be dropped
            missing = list(dict.fromkeys(t for t in texts if t not in self._by_text))
            for text, tokens in zip(missing, self.model.token_vectors(missing) if missing else [],
                                    strict=True):
                self._by_text[text] = tokens
                self.bytes += tokens.vectors.nbytes
            while self.bytes > self.max_bytes and len(self._by_text) > len(missing):
                self.bytes -= self._by_text.popitem(last=False)[1].vectors.nbytes

    def token_vectors(self, texts: Sequence[str]) -> list[TokenVectors]:
        with self._lock:
            self.prime(texts)
            return [self._by_text[t] for t in texts]


# embedder -> its memo: an evaluation's repetitions, and the runs of one process that share an embedder (a
# notebook kernel, a sweep, a benchmark), encode each context once. Dropped with the embedder.
_MEMOS: weakref.WeakKeyDictionary[Embedder, TokenVectorMemo] = weakref.WeakKeyDictionary()
_MEMOS_LOCK = threading.Lock()


def token_vector_memo(embedder: Embedder) -> TokenVectorMemo:
    """The word-piece memo of `embedder` (see `token_model`), created on first use and kept as long as
    `embedder` is (at most 256 MiB of vectors)."""
    with _MEMOS_LOCK:
        memo = _MEMOS.get(embedder)
        if memo is None:
            memo = _MEMOS[embedder] = TokenVectorMemo(token_model(embedder))
        return memo


def texts_to_encode(answer: str, contexts: Sequence[str]) -> list[str]:
    """What `measure_answer` encodes for one answer (its claims, then its contexts' segments)."""
    claims = split_claims(answer)
    return [c.text for c in claims] + context_segments(contexts) if claims else []


def measure_answer(answer: str, contexts: Sequence[str], embedder: Embedder) -> AnswerMeasures:
    """Everything the metric measures of one answer: one word-piece batch (the claims and the contexts'
    segments); claim and context-sentence vectors are pooled from it as the model pools sentences."""
    claims = split_claims(answer)
    out = AnswerMeasures(answer, sum(len(c) for c in contexts))
    if not claims:
        return out
    segments = context_segments(contexts)
    encoded = token_model(embedder).token_vectors([c.text for c in claims] + segments)
    claim_tokens, segment_tokens = encoded[:len(claims)], encoded[len(claims):]
    dim = encoded[0].vectors.shape[1]
    claim_vecs = _normalise(np.asarray([t.vectors.mean(axis=0) for t in claim_tokens]))
    sentences: list[str] = []
    sent_parts, window_parts, token_parts = [], [], []
    for text, tokens in zip(segments, segment_tokens, strict=True):
        own, sent_vecs, window_vecs = _pooled(_Segment(text, tokens))
        sentences.extend(own)
        sent_parts.append(sent_vecs)
        window_parts.append(window_vecs)
        token_parts.append(_normalise(tokens.vectors[1:-1]))
    empty = np.zeros((0, dim), np.float32)
    sent_vecs = np.vstack(sent_parts) if sent_parts else empty
    all_context = np.vstack(sent_parts + window_parts) if sent_parts else empty
    context_tokens = np.vstack(token_parts) if token_parts else empty
    sims_sent = claim_vecs @ sent_vecs.T
    sims_all = claim_vecs @ all_context.T
    context_text = " ".join(contexts)
    stems, nums, terms = (set(content_stems(context_text)), numbers(context_text),
                          capitalised_terms(context_text))
    lowered = context_text.lower()
    for i, claim in enumerate(claims):
        words = content_stems(claim.text)
        m = ClaimMeasures(claim, bool(_META.search(claim.text)), content_words=len(words),
                          novel_words=sum(w not in stems for w in words))
        m.novel_numbers = len(numbers(claim.text) - nums)
        m.novel_terms = sum(t not in terms and t not in lowered for t in capitalised_terms(claim.text))
        m.token_precision = _token_precision(claim_tokens[i], context_tokens)
        if sims_sent.shape[1]:
            best = int(sims_sent[i].argmax())
            m.sim_sentence = float(sims_sent[i, best])
            m.sim_window = float(sims_all[i].max())
            best_nums, own_nums = numbers(sentences[best]), numbers(claim.text)
            m.number_conflict = int(bool(own_nums and best_nums and own_nums - best_nums))
            m.negation_conflict = int(m.sim_sentence > 0.5
                                      and bool(_NEGATION.search(claim.text))
                                      != bool(_NEGATION.search(sentences[best])))
        out.claims.append(m)
    return out


FEATURE_NAMES = (
    "log_chars", "log_claims", "length_ratio", "min_sim_sentence", "mean_sim_sentence", "min_sim_window",
    "mean_sim_window", "share_window_below_60", "min_token_precision", "mean_token_precision",
    "share_token_below_70", "answer_novel_share", "max_claim_novel_share", "claims_novel_over_30",
    "novel_numbers", "novel_terms", "number_conflicts", "negation_conflicts", "meta_claims",
    "passage_mentions", "refusal", "hedges", "additions", "list_items", "novel_words_total",
    "claims_token_below_70", "claims_window_below_60", "claims_novel_over_50",
)


def answer_features(m: AnswerMeasures) -> list[float]:
    """The answer's feature vector, in FEATURE_NAMES order."""
    world = [c for c in m.claims if not c.claim.meta] or m.claims
    n = max(len(world), 1)

    def agg(values: list[float], how: Callable[[list[float]], SupportsFloat]) -> float:
        return float(how(values)) if values else 1.0

    sim_s = [c.sim_sentence for c in world]
    sim_w = [c.sim_window for c in world]
    tok = [c.token_precision for c in world]
    shares = [c.novel_share for c in world]
    content = sum(c.content_words for c in world)
    values = {
        "log_chars": math.log1p(len(m.answer)),
        "log_claims": math.log1p(len(m.claims)),
        "length_ratio": math.log1p(len(m.answer) / max(m.context_chars, 1)),
        "min_sim_sentence": agg(sim_s, min), "mean_sim_sentence": agg(sim_s, np.mean),
        "min_sim_window": agg(sim_w, min), "mean_sim_window": agg(sim_w, np.mean),
        "share_window_below_60": sum(s < 0.6 for s in sim_w) / n,
        "min_token_precision": agg(tok, min), "mean_token_precision": agg(tok, np.mean),
        "share_token_below_70": sum(t < 0.7 for t in tok) / n,
        "answer_novel_share": sum(c.novel_words for c in world) / content if content else 0.0,
        "max_claim_novel_share": max(shares, default=0.0),
        "claims_novel_over_30": float(sum(s > 0.3 for s in shares)),
        "novel_numbers": math.log1p(sum(c.novel_numbers for c in world)),
        "novel_terms": math.log1p(sum(c.novel_terms for c in world)),
        "number_conflicts": float(sum(c.number_conflict for c in world)),
        "negation_conflicts": float(sum(c.negation_conflict for c in world)),
        "meta_claims": float(sum(c.claim.meta for c in m.claims)),
        "passage_mentions": math.log1p(sum(c.mentions_passages for c in m.claims)),
        "refusal": float(bool(_REFUSAL.search(m.answer))),
        "hedges": math.log1p(len(_HEDGE.findall(m.answer))),
        "additions": math.log1p(len(_ADDITION.findall(m.answer))),
        "list_items": float(sum(bool(_LIST_MARKER.match(line)) for line in m.answer.split("\n"))),
        "novel_words_total": math.log1p(sum(c.novel_words for c in world)),
        "claims_token_below_70": math.log1p(sum(t < 0.7 for t in tok)),
        "claims_window_below_60": math.log1p(sum(s < 0.6 for s in sim_w)),
        "claims_novel_over_50": math.log1p(sum(s > 0.5 for s in shares)),
    }
    return [values[name] for name in FEATURE_NAMES]
