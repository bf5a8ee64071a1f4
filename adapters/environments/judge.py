"""The `judge` scorer of the `task` environment: an LLM grades a reply against a rubric.

The judge is a model role of its own (`models.judge`: backend, model, prices, limits), reached
through the call journal like every call, so a resumed run never pays a judge call twice and
`skillopt calls` lists them under role `judge`. Its reply is structured: `{"score": 0..1,
"pass": bool, "reason": "..."}`. An unusable reply is asked again once, with the parse error;
if the second one is unusable too, the item gets a scorer *error* that says so, never a pass
and never a silent 0.

The rubric is a template: `{reply}` is the reply to grade, `{column}` any field of the row
(`{expected}` the mapped expected answer). When the rubric does not place `{reply}`, the reply
follows it. The offline model can judge, deterministically (token overlap with `expected`),
so an example with a judge runs offline.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from typing import Any

from skillopt.adapters.environments.outcome import Outcome
from skillopt.adapters.protocol import AdapterError, ChatModel, ChatRequest, Message

SYSTEM = (
    "You grade one reply against a rubric. Read the rubric and the reply, decide how well the "
    "reply meets the rubric, and answer with a JSON object only: "
    '{"score": a number from 0 to 1, "pass": true or false, "reason": one sentence}.'
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "pass": {"type": "boolean"},
        "reason": {"type": "string"},
    },
    "required": ["score", "pass", "reason"],
}


class Unusable(ValueError):
    pass


def placeholders(rubric: str, where: str) -> list[str]:
    try:
        return [n for _, n, _, _ in string.Formatter().parse(rubric) if n is not None]
    except ValueError as exc:
        raise AdapterError(f"{where}: bad rubric template: {exc}") from None


def parse(text: str) -> tuple[float, bool, str]:
    """(score, pass, reason) from a judge's reply, or Unusable naming what is wrong."""
    fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.S)
    body = fenced.group(1) if fenced else text.strip()
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        raise Unusable("no JSON object in the judge's reply") from None
    if not isinstance(value, dict):
        raise Unusable("the judge's reply is not a JSON object")
    score, passed, reason = value.get("score"), value.get("pass"), value.get("reason", "")
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        raise Unusable(f"score must be a number in [0, 1], got {score!r}")
    if not isinstance(passed, bool):
        raise Unusable(f"pass must be true or false, got {passed!r}")
    return float(score), passed, str(reason)


class Judge:
    """One judge scorer: `rubric` (required), `max_tokens` of the judge's reply (512). It passes
    when the judge says `pass` (its `score` is the scorer's score; `pass_at` does not apply)."""

    def __init__(self, spec: Mapping[str, Any], where: str) -> None:
        rubric = spec.get("rubric")
        if not isinstance(rubric, str) or not rubric.strip():
            raise AdapterError(f"{where}: needs `rubric`, the grading instructions")
        self.rubric = rubric
        self.fields = [n for n in placeholders(rubric, where) if n != "reply"]
        self.max_tokens = int(spec.get("max_tokens", 512))

    def prompt(self, reply: str, row: Mapping[str, Any]) -> str:
        values = {k: ("" if v is None else v) for k, v in row.items()}
        text = self.rubric.format_map({**values, "reply": reply})
        return text if "{reply}" in self.rubric else f"{text}\n\nReply to grade:\n{reply}"

    def __call__(self, reply: str, row: Mapping[str, Any], model: ChatModel | None) -> Outcome:
        if model is None:
            raise AdapterError("a judge scorer needs models.judge (backend, model)")
        user = self.prompt(reply, row)
        hints = {"reply": reply, "expected": "" if row.get("expected") is None else row["expected"]}
        messages = (Message("user", user),)
        errors: list[str] = []
        used = [0, 0, 0]
        for _ in range(2):  # the reply, and one re-ask with what was wrong
            request = ChatRequest(
                role="judge",
                system=SYSTEM,
                messages=messages,
                purpose="judge",
                hints=hints,
                max_tokens=self.max_tokens,
                json_schema=SCHEMA,
            )
            completion = model.complete(request)
            used = [
                used[0] + completion.input_tokens,
                used[1] + completion.output_tokens,
                used[2] + completion.cache_read_tokens,
            ]
            answer = completion.text
            try:
                score, passed, reason = parse(answer)
            except Unusable as exc:
                errors.append(str(exc))
                again = f"Your reply could not be used: {exc}. Answer with the JSON object only."
                messages = (*messages, Message("assistant", answer), Message("user", again))
                continue
            tokens = (used[0], used[1], used[2])
            return Outcome(score, passed, "" if passed else f"judge: {reason}", tokens=tokens)
        reason = "judge reply unusable: " + "; after a re-ask: ".join(errors)
        return Outcome(0.0, False, reason, True, (used[0], used[1], used[2]))
