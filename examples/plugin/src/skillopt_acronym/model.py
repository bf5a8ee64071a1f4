"""`initials`: a toy target model. It reads the skill (the system prompt) the way a real model
would, not the offline hints: it abbreviates the phrase it is asked about and writes it in the
format the skill states last. As an optimizer it refuses (configure another backend for that).

A model backend is any class built as `Factory(role, model, options)` with `name` and
`complete(request) -> Completion`; see skillopt.adapters.protocol (its docstrings state the whole contract).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skillopt.adapters.protocol import ChatRequest, Completion, ModelCallError, check_options

FORMATS = {
    "capital letters": lambda letters: letters.upper(),
    "lower case with dots": lambda letters: "".join(f"{c}." for c in letters),
}


class InitialsModel:
    def __init__(self, role: str, model: str, options: Mapping[str, Any]) -> None:
        check_options(f"models.{role}.options", options, {})
        self.role = role
        self.name = model

    def complete(self, request: ChatRequest) -> Completion:
        if request.purpose == "doctor":
            return Completion("OK", self.name, 1, 1)
        if request.role != "target":
            raise ModelCallError(f"{self.name}: the initials model can only play the target")
        phrase = request.messages[-1].content.split(":", 1)[-1]
        letters = "".join(word[0] for word in phrase.split()).lower()
        answer, last = letters, -1
        for marker, render in FORMATS.items():
            at = request.system.rfind(marker)
            if at > last:
                answer, last = render(letters), at
        tokens_in = len(request.system.split()) + len(phrase.split())
        return Completion(answer, self.name, tokens_in, 1)
