"""How a closed-loop target is told to write its program: the instructions that follow the skill
(and its documentation modules) in the system prompt, per language.

`env.options.instructions` names a preset; `env.options.instructions_text` replaces it with
your own text. `{language}` in either stands for `env.options.language`. Unset, a language
with a preset of its own name gets it (`ilo`), every other language `fenced`.

- `fenced`: one program in one fenced code block (skillopt's own instruction, what every
  config written before presets got);
- `ilo`: the seed bench's rules for ilo programs: first line `-- run: main`, the expected
  output in an `-- out:` comment, under 50 lines, no markdown fences;
- `plain`: the seed bench's rules for its second language: one self-contained file under 50
  lines, the source only, no fences.

A reply without fences is taken whole as the program; one with fences anyway still works
(extract_program).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skillopt.adapters.protocol import AdapterError

PRESETS: dict[str, str] = {
    # Kept byte for byte: it is part of every recorded request of the existing benches.
    "fenced": (
        "\n\nAnswer with one complete {language} program in a single fenced code block and "
        "nothing else. The program reads no input and prints its result to standard output."
    ),
    "ilo": (
        "\n\nWrite one complete, runnable ilo program (prefix notation, typed) that solves the "
        "task.\n"
        "Rules:\n"
        "- The program must be syntactically valid ilo.\n"
        "- The very first line is the comment: -- run: main\n"
        "- When the task gives its expected output, add the comment: -- out: <expected>\n"
        "- Keep the program under 50 lines.\n"
        "- Anything that needs the network or the environment is mocked with a literal value.\n"
        "- Answer with the ilo program only: no explanation, no markdown fences."
    ),
    "plain": (
        "\n\nWrite one complete, runnable {language} program that solves the task.\n"
        "Rules:\n"
        "- The program is a single self-contained file.\n"
        "- Keep the program under 50 lines.\n"
        "- Anything that needs the network or the environment is mocked with a literal value.\n"
        "- Answer with the program source only: no explanation, no markdown fences."
    ),
}


def instructions(opts: Mapping[str, Any], language: str) -> str:
    """The instruction text of a config's options (see the module docstring)."""
    own = str(opts.get("instructions_text", ""))
    name = str(opts.get("instructions", "")).strip()
    if own.strip():
        if name:
            raise AdapterError(
                "env.options.instructions_text: replaces the preset; remove instructions "
                f"({name!r}) or this"
            )
        text = "\n\n" + own.strip()
    else:
        name = name or (language if language in PRESETS else "fenced")
        if name not in PRESETS:
            raise AdapterError(
                f"env.options.instructions: unknown preset {name!r} (known: "
                f"{', '.join(PRESETS)}; or write your own in instructions_text)"
            )
        text = PRESETS[name]
    return text.replace("{language}", language)  # other braces are the text's own
