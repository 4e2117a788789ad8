"""PII redaction: true positives are replaced, look-alikes (false-positive traps) are left alone."""

from __future__ import annotations

import pytest

from axiom.config import GenerationSettings
from axiom.generation import OpenAIGenerator
from axiom.llm import ChatResult
from axiom.redaction import luhn_valid, redact, redact_with_counts
from axiom.types import Hit


@pytest.mark.parametrize("text, expected", [
    ("write to john.doe+rag@example.co.uk today", "write to [EMAIL] today"),
    ("x@y.io", "[EMAIL]"),
    ("Contact: Ana_Lima-2@mail.server.org.", "Contact: [EMAIL]."),
])
def test_emails_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", ["foo@bar", "a@b.c", "@handle on social", "user@localhost",
                                  "price @ 5.00 each"])
def test_email_lookalikes_are_kept(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize("text", [
    "call 555-123-4567 now", "(555) 123-4567", "+1 555 123 4567", "+1-555-123-4567", "555.123.4567",
    "+44 20 7946 0958", "+49 30 12345678", "+33 1 23 45 67 89", "tel:+14155552671",
])
def test_phone_numbers_are_redacted(text: str) -> None:
    out = redact(text)
    assert "[PHONE]" in out
    assert not any(ch.isdigit() for ch in out), out


@pytest.mark.parametrize("text", [
    "the date 2024-01-15", "between 1999 and 2024", "version 1.2.3", "host 192.168.1.1", "$1,234,567.89",
    "ISBN 978-3-16-148410-0", "extension 555-1234", "zip 90210-1234", "at 40.7128, -74.0060",
    "built 1698-1699 and rebuilt 1756-1759", "pi is 3.14159265358979", "order 1234567890",
])
def test_phone_lookalikes_are_kept(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize("number", ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111",
                                    "5500 0000 0000 0004", "378282246310005", "6011 1111 1111 1117"])
def test_luhn_valid_card_numbers_are_redacted(number: str) -> None:
    assert luhn_valid(number.replace(" ", "").replace("-", ""))
    assert redact(f"my card is {number}, thanks") == "my card is [CARD], thanks"


@pytest.mark.parametrize("number", ["4111 1111 1111 1112", "1234 5678 9012 3456", "4111111111111112",
                                    "5500 0000 0000 0005", "1700000000000"])
def test_luhn_invalid_or_non_card_numbers_are_kept(number: str) -> None:
    assert redact(f"reference {number} here") == f"reference {number} here"


@pytest.mark.parametrize("text", ["ssn 123-45-6789", "ssn 123 45 6789"])
def test_ssns_are_redacted(text: str) -> None:
    assert redact(text) == "ssn [SSN]"


@pytest.mark.parametrize("text", ["000-12-3456", "666-12-3456", "912-34-5678", "123-00-6789", "123-45-0000",
                                  "123-456-789", "2024-01-15"])
def test_invalid_ssns_are_kept(text: str) -> None:
    assert redact(f"id {text}") == f"id {text}"


def test_counts_and_mixed_text() -> None:
    result = redact_with_counts("Mail a@b.com or b@c.org, call (555) 123-4567, card 4111 1111 1111 1111, "
                                "SSN 123-45-6789. The lighthouse was lit in 1759.")
    assert result.counts == {"email": 2, "phone": 1, "card": 1, "ssn": 1}
    assert result.text.endswith("The lighthouse was lit in 1759.")
    assert redact_with_counts("nothing personal here").changed is False


class _RecordingClient:
    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []

    def chat(self, messages, **kwargs):  # noqa: ANN001, ANN003, ANN201
        self.messages = list(messages)
        return ChatResult(text="Answer [1].")


@pytest.mark.parametrize("redact_llm_input", [True, False])
def test_llm_input_redaction_is_configurable(redact_llm_input: bool) -> None:
    client = _RecordingClient()
    generator = OpenAIGenerator(client, fallback=None,
                                settings=GenerationSettings(),  # type: ignore[arg-type]
                                redact_llm_input=redact_llm_input)
    hit = Hit("c1", "people.md", None, 0.9, "Reach the keeper at keeper@light.house or 555-123-4567.")
    answer = generator.generate("Is jane@doe.com on file? SSN 123-45-6789", [hit])
    sent = "\n".join(m["content"] for m in client.messages)
    secrets = ("jane@doe.com", "123-45-6789", "keeper@light.house", "555-123-4567")
    if redact_llm_input:
        assert not any(s in sent for s in secrets), sent
        assert "[EMAIL]" in sent and "[SSN]" in sent and "[PHONE]" in sent
    else:
        assert all(s in sent for s in secrets)
    # the answer keeps the caller's own question and the stored context
    assert answer.question == "Is jane@doe.com on file? SSN 123-45-6789"
    assert answer.contexts[0].text == hit.text
