"""What one web request may ask for, and the checks that turn its JSON body into a request.

Every mistake a client can make is an LMError whose message names the field and says what
would be accepted; `Refused` carries the HTTP status when it is not 400.
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import asdict, dataclass, fields

from lmlib.errors import LMError
from lmlib.sampling import DEFAULT_MAX_NEW_TOKENS, DEFAULT_TEMPERATURE, INTERACTIVE_MAX_NEW_TOKENS, MAX_NEW_TOKENS

FIELDS = ("prompt", "max_new_tokens", "max_seq_len", "temperature", "top_k", "top_p", "seed")


class Refused(LMError):
    """A request the server will not serve, with the HTTP status (and headers) that say why."""

    def __init__(self, message: str, status: int, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


@dataclass(frozen=True)
class Limits:
    """What one request may ask for, and how many generations run or wait at once."""

    max_body_bytes: int = 16_384
    max_prompt_chars: int = 2_000
    max_new_tokens: int = INTERACTIVE_MAX_NEW_TOKENS  # the original's slider stopped at 100
    max_seconds: float = 30.0  # a generation still running after this stops early
    max_concurrent: int = 4  # generations at once; on 2 cores more only share the CPU
    max_queue: int = 4  # requests waiting for a slot; one more is refused at once (503)
    queue_seconds: float = 30.0  # how long an admitted request waits for a slot before a 503

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            empty_ok = field.name == "max_queue"  # no queue: refuse whenever every slot is busy
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not number or not (value >= 0 if empty_ok else value > 0):
                kind = "a number >= 0" if empty_ok else "a positive number"
                raise LMError(f"web limit {field.name} must be {kind}, got {value!r}")
            if field.type == "int" and value != int(value):
                raise LMError(f"web limit {field.name} must be a whole number, got {value!r}")
        if self.max_new_tokens > MAX_NEW_TOKENS:
            raise LMError(f"web limit max_new_tokens must be at most the library's {MAX_NEW_TOKENS}")


@dataclass(frozen=True)
class GenerationRequest:
    """One validated request: the keywords of `Generator.stream`."""

    prompt: str
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = DEFAULT_TEMPERATURE
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0

    def keywords(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "prompt"}


def too_large(limits: Limits) -> Refused:
    return Refused(f"the request body is over {limits.max_body_bytes} bytes; send a shorter prompt", 413)


def parse_request(body: bytes, limits: Limits) -> GenerationRequest:
    """Validate a JSON request body; every mistake raises LMError saying which field and why."""
    if len(body) > limits.max_body_bytes:
        raise too_large(limits)
    data = _json_object(body)
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise LMError(f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}")
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise LMError("prompt is required and must be a non-empty string")
    if len(prompt) > limits.max_prompt_chars:
        raise LMError(f"prompt is {len(prompt)} characters; the limit is {limits.max_prompt_chars}")
    if "max_seq_len" in data and "max_new_tokens" in data and data["max_seq_len"] != data["max_new_tokens"]:
        raise LMError("give max_new_tokens or its old name max_seq_len, not both")
    length = data.get("max_new_tokens", data.get("max_seq_len", DEFAULT_MAX_NEW_TOKENS))
    seed = data.get("seed")
    return GenerationRequest(
        prompt=prompt,
        max_new_tokens=_number("max_new_tokens", length, 1, limits.max_new_tokens, whole=True),
        temperature=_number("temperature", data.get("temperature", DEFAULT_TEMPERATURE), 0.0, 2.0),
        top_k=_number("top_k", data.get("top_k", 0), 0, 10_000, whole=True),
        top_p=_number("top_p", data.get("top_p", 1.0), 0.01, 1.0),
        # no seed means random, but the one drawn is returned so a result can be repeated
        seed=secrets.randbelow(2**31)
        if seed in (None, "", "random")
        else _number("seed", seed, 0, 2**31 - 1, whole=True),
    )


def _json_object(body: bytes) -> dict:
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise LMError("the request body is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise LMError(f"the request body is not valid JSON ({err.msg} at character {err.pos})") from None
    except RecursionError:  # [[[[...]]]] thousands deep: the parser gives up, the client erred
        raise LMError("the request body is nested too deeply; send a flat JSON object") from None
    except ValueError:  # Python refuses to read an integer of over 4,300 digits
        raise LMError("the request body holds a number that is too long to read (thousands of digits)") from None
    if not isinstance(data, dict):
        raise LMError('the request body must be a JSON object such as {"prompt": "it was"}')
    return data


def _number(name: str, value, low: float, high: float, whole: bool = False):
    given = value
    # The original page posted range-input values, which are strings: "0.7" is accepted.
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            value = None
    # A JSON integer may have hundreds of digits: it is compared as an int, never made a
    # float, which it may not fit (math.isfinite(10**400) raises OverflowError).
    finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if isinstance(value, bool) or not finite:
        raise LMError(f"{name} must be a number, got {_shown(given)}")
    if whole and value != int(value):
        raise LMError(f"{name} must be a whole number, got {value}")
    if not low <= value <= high:
        raise LMError(f"{name} must be between {low:g} and {high:g}, got {_shown(value)}")
    return int(value) if whole else float(value)


def _shown(value) -> str:
    """A value for an error message: JSON, and short even for a 400-digit number."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return f"a number of about {int(abs(value).bit_length() * math.log10(2)) + 1} digits"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
