"""One generation for the web app: bounded in time, summarised as JSON or sent as events."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

from lmlib.apps.web.admission import GONE_HINT, ClientGone, never
from lmlib.apps.web.request import GenerationRequest, Limits
from lmlib.errors import LMError
from lmlib.generate import continuation_pieces


def run_bounded(
    generator, request: GenerationRequest, limits: Limits, gone: Callable[[], bool] = never
) -> Iterator[tuple[str, float] | str]:
    """Yield (token, surprisal) pairs, then one reason: "length", "eos" or "time".

    Raises ClientGone between two tokens once `gone()` says the client has left.
    """
    deadline = time.monotonic() + limits.max_seconds
    count = 0
    for item in generator.stream(request.prompt, **request.keywords()):
        if gone():  # nobody will read the rest: stop before the next token is computed
            raise ClientGone(f"the client closed the connection; generation stopped{GONE_HINT}")
        count += 1
        yield item.token, float(item.surprisal)
        if time.monotonic() > deadline and count < request.max_new_tokens:
            yield "time"
            return
    yield "length" if count >= request.max_new_tokens else "eos"


def collect(items) -> tuple[list[str], list[float], str]:
    """Run `run_bounded` to the end: (tokens, surprisals, why it stopped)."""
    tokens, surprisals, stopped = [], [], "eos"
    for item in items:
        if isinstance(item, str):
            stopped = item
        else:
            tokens.append(item[0])
            surprisals.append(item[1])
    return tokens, surprisals, stopped


def summary(
    request: GenerationRequest, tokens: list, surprisals: list, stopped: str, started: float, casing: dict | None = None
) -> dict:
    """The JSON answer: the original's `generated_text` plus the tokens and how it ended.

    `generated_text` is the prompt as sent followed by `continuation`, the new text in readable
    form; `pieces` is the continuation cut at each token (what the page colours by surprise).
    Words show in the run's `casing` (the original study's were lowercase); `tokens` stay the model's.
    """
    pieces = continuation_pieces(request.prompt, tokens, casing)
    continuation = "".join(pieces)
    return {
        "generated_text": request.prompt + continuation,
        "continuation": continuation,
        "pieces": pieces,
        "tokens": tokens,
        "surprisals": [round(s, 3) for s in surprisals],
        "seed": request.seed,
        "stopped": stopped,
        "seconds": round(time.monotonic() - started, 3),
    }


def events(first, items, request: GenerationRequest, started: float, casing: dict | None = None) -> Iterator[str]:
    """Server-sent events: one `token` per word, then `done` (the summary) or `error`.

    Each token event carries `word` (the token in its usual casing) and `text`, the readable
    piece it adds to the text so far (its space, its capital); `done`'s `pieces` are the final
    ones (an apostrophe's piece can only be settled by the token after it).
    """
    forms = casing or {}
    tokens, surprisals, stopped = [], [], "eos"
    try:
        for item in _chain(first, items):
            if isinstance(item, str):
                stopped = item
                continue
            tokens.append(item[0])
            surprisals.append(item[1])
            word, text = forms.get(item[0], item[0]), continuation_pieces(request.prompt, tokens, casing)[-1]
            yield _event("token", {"token": item[0], "word": word, "text": text, "surprisal": round(item[1], 3)})
        yield _event("done", summary(request, tokens, surprisals, stopped, started, casing))
    except ClientGone:
        return  # nobody is listening; the server closes the response, which frees the slot
    except LMError as err:
        yield _event("error", {"error": str(err)})
    except Exception:  # noqa: BLE001 - the status line is sent: the page must still hear of it
        logging.getLogger(__name__).exception("generation failed")
        yield _event("error", {"error": "the model failed while generating; see the server log"})


def _chain(first, rest):
    yield first
    yield from rest


def _event(kind: str, data: dict) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"
