"""The offline model: deterministic, no network, the default of the demo and of most tests.

As a target it answers with the variant whose rule the skill states last (it follows only
what the skill says) and slips now and then, more often as the skill grows long. As an
optimizer it reads the structured hints of a request and writes the same JSON a real model
would, in a fenced block, so the trainer parses it with the same code. It is imperfect on
purpose: sometimes it infers a decoy rule, aims an edit at a heading that is not there, or
pads the skill with examples; the gate has real decisions to make.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from skillopt.adapters.models import offline_modes as modes
from skillopt.adapters.protocol import AdapterError, ChatRequest, Completion, check_options

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "latency_ms": 0,
    # target
    "base_slip": 0.03,
    "free_words": 120,
    "slip_per_100_words": 0.06,
    # optimizer
    "decoy_rate": 0.25,
    "missing_target_rate": 0.15,
    "padding_rate": 0.5,
    "unusable_rate": 0.0,
}
RULES_HEADING = "## Formatting rules"


class OfflineModel:
    def __init__(self, role: str, model: str, options: Mapping[str, Any]) -> None:
        self.role = role
        self.name = model
        self.opts = check_options(f"models.{role}.options", options, DEFAULTS)
        for key in ("latency_ms", "free_words", "slip_per_100_words"):
            if self.opts[key] < 0:
                raise AdapterError(
                    f"models.{role}.options.{key}: must be >= 0, got {self.opts[key]}"
                )
        for key in (
            "base_slip",
            "decoy_rate",
            "missing_target_rate",
            "padding_rate",
            "unusable_rate",
        ):
            if not 0 <= self.opts[key] <= 1:
                raise AdapterError(
                    f"models.{role}.options.{key}: must be in [0, 1], got {self.opts[key]}"
                )

    # -- deterministic draws -------------------------------------------------------------------

    def _u(self, *parts: object) -> float:
        """A uniform number in [0, 1) derived from the seed and the request, never from a clock."""
        text = json.dumps([self.opts["seed"], *parts], sort_keys=True, default=str)
        return int(hashlib.sha256(text.encode()).hexdigest()[:13], 16) / 16**13

    def complete(self, request: ChatRequest) -> Completion:
        if self.opts["latency_ms"]:
            time.sleep(self.opts["latency_ms"] / 1000)
        handler = {
            "rollout": self._rollout,
            "reflect": self._reflect_shaped,
            "merge": self._merge_any,
            "rank": self._rank,
            "budget": lambda r: self._reply(modes.budget(r.hints), "Budget:"),
            "rewrite": lambda r: self._reply(modes.rewrite(r.hints, RULES_HEADING), "Rewrite:"),
            "slow_update": lambda r: self._reply(modes.slow_update(r.hints), "Guidance:"),
            "meta_skill": lambda r: self._reply(modes.meta_skill(r.hints), "Memory:"),
            "consolidate": lambda r: self._reply(modes.consolidate(r.hints), "Notes:"),
            "doctor": lambda r: '{"ok": true}' if r.json_schema else "OK",
            "judge": self._judge,
        }.get(request.purpose)
        if handler is None:
            raise AdapterError(f"offline model: no behaviour for purpose {request.purpose!r}")
        prompt = request.system + "".join(m.content for m in request.messages)
        unusable = self._u("unusable", prompt) < self.opts["unusable_rate"]
        if request.role != "target" and unusable:  # an optimizer's or a judge's reply
            text = "I have looked at the trajectories and would tighten the rules a little."
        else:
            text = handler(request)
        return Completion(text, self.name, len(prompt) // 4 + 1, len(text) // 4 + 1)

    # -- target --------------------------------------------------------------------------------

    def slip_probability(self, skill: str) -> float:
        words = len(skill.split())
        extra = max(0, words - self.opts["free_words"]) / 100
        return min(0.9, self.opts["base_slip"] + self.opts["slip_per_100_words"] * extra)

    def _rollout(self, request: ChatRequest) -> str:
        hints = request.hints
        answer = str(hints["default"])
        last = -1
        for variant in hints["variants"]:
            for match in re.finditer(variant["pattern"], request.system):
                if match.start() > last:
                    last, answer = match.start(), str(variant["answer"])
        user = request.messages[-1].content
        if self._u("slip", request.system, user) < self.slip_probability(request.system):
            return answer.swapcase() if answer.swapcase() != answer else answer + "."
        return answer

    def _judge(self, request: ChatRequest) -> str:
        """As a judge: token F1 of the reply against the expected answer, a pass from 0.5."""
        got = re.findall(r"\w+", str(request.hints.get("reply", "")).lower())
        want = re.findall(r"\w+", str(request.hints.get("expected", "")).lower())
        common = sum(min(got.count(w), want.count(w)) for w in set(got))
        f1 = 0.0 if not common else 2 * common / (len(got) + len(want))
        verdict = {
            "score": round(f1, 3),
            "pass": f1 >= 0.5,
            "reason": f"{common} of the expected answer's words are in the reply",
        }
        return self._reply(verdict, "Verdict:")

    # -- optimizer -----------------------------------------------------------------------------

    @staticmethod
    def _reply(obj: Mapping[str, Any], lead: str) -> str:
        return f"{lead}\n\n```json\n{json.dumps(obj, indent=2, ensure_ascii=False)}\n```\n"

    def _stated(self, skill: str, feedback: Mapping[str, Any]) -> str:
        """Which of the rule and the decoy the skill states last, as the target reads it."""
        best, which = -1, "none"
        for key in ("rule", "decoy"):
            for match in re.finditer(feedback[f"{key}_pattern"], skill):
                if match.start() > best:
                    best, which = match.start(), key
        return which

    def _reflect_shaped(self, request: ChatRequest) -> str:
        text = self._reflect(request)
        obj = json.loads(text.split("```json\n", 1)[1].rsplit("\n```", 1)[0])
        obj = modes.shape_reflection(obj, request.hints, RULES_HEADING)
        return self._reply(obj, text.split("\n\n", 1)[0])

    def _merge_any(self, request: ChatRequest) -> str:
        kind = request.hints.get("kind", "edits")
        if kind == "suggestions":
            return self._reply(modes.merge_suggestions(request.hints["patches"]), "Merged:")
        if kind == "candidates":
            return self._reply(modes.merge_candidates(request.hints["patches"]), "Merged:")
        return self._merge(request)

    def _reflect(self, request: ChatRequest) -> str:
        hints = request.hints
        if hints["source_type"] == "success":
            return self._reflect_success(request)
        skill: str = hints["skill"]
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for item in hints["items"]:
            groups.setdefault(item["task_type"], []).append(item)
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        edits: list[dict[str, Any]] = []
        summary: list[dict[str, Any]] = []
        for task_type, items in ordered:
            fb = items[0]["feedback"]
            example = f"expected {fb.get('expected')!r}, got {fb.get('got')!r}"
            if "rule_pattern" not in fb:  # no house rule known for these items: nothing to edit
                summary.append(_summary(task_type, len(items), f"no rule known; {example}"))
                continue
            stated = self._stated(skill, fb)
            if stated == "rule":
                summary.append(
                    _summary(task_type, len(items), f"rule stated but not followed; {example}")
                )
                continue
            summary.append(_summary(task_type, len(items), f"house format not followed; {example}"))
            if stated == "decoy":
                line = next(ln for ln in skill.splitlines() if re.search(fb["decoy_pattern"], ln))
                edits.append({"op": "replace", "target": line, "content": f"- {fb['rule']}"})
                continue
            key = (task_type, request.messages[-1].content)
            text = fb["decoy"] if self._u("decoy", key) < self.opts["decoy_rate"] else fb["rule"]
            if RULES_HEADING in skill:
                target = RULES_HEADING
                if self._u("target", key) < self.opts["missing_target_rate"]:
                    target = "## Formatting Rules:"
                edits.append({"op": "insert_after", "target": target, "content": f"- {text}"})
            else:
                edits.append({"op": "append", "content": f"{RULES_HEADING}\n\n- {text}"})
        budget = int(hints["budget"])
        obj = {
            "batch_size": len(hints["items"]),
            "failure_summary": summary,
            "patch": {
                "reasoning": f"{len(ordered)} failure pattern(s); one rule per unmet pattern.",
                "edits": edits[:budget],
            },
        }
        return self._reply(obj, "Here is my analysis of the failed trajectories.")

    def _reflect_success(self, request: ChatRequest) -> str:
        hints = request.hints
        items: Sequence[Mapping[str, Any]] = hints["items"]
        types = sorted({i["task_type"] for i in items})
        edits: list[dict[str, Any]] = []
        if self._u("padding", request.messages[-1].content) < self.opts["padding_rate"]:
            lines = [f"- {i['feedback'].get('expected', '')}" for i in items[:4]]
            edits.append(
                {
                    "op": "append",
                    "content": "## Worked examples\n\nThese answers were judged correct; "
                    "imitate their exact shape, spacing and punctuation, and re-read the "
                    "rules above before answering, checking each character of the value "
                    "against the examples below before you commit to the answer:\n"
                    + "\n".join(lines),
                }
            )
        obj = {
            "batch_size": len(items),
            "success_patterns": [f"correct house format for {', '.join(types)}"],
            "patch": {"reasoning": "Reinforce what worked.", "edits": edits},
        }
        return self._reply(obj, "Here is my analysis of the successful trajectories.")

    def _merge(self, request: ChatRequest) -> str:
        merged: dict[tuple[str, str, str], dict[str, Any]] = {}
        for patch in request.hints["patches"]:
            for edit in patch:
                key = (edit["op"], edit.get("target", ""), edit.get("content", "").strip())
                if key in merged:
                    merged[key]["support_count"] += int(edit.get("support_count", 1))
                else:
                    merged[key] = {**edit, "support_count": int(edit.get("support_count", 1))}
        edits = sorted(merged.values(), key=lambda e: e.get("source_type") != "failure")
        obj = {"reasoning": f"Merged {len(merged)} distinct edits; failures first.", "edits": edits}
        return self._reply(obj, "Merged patch:")

    def _rank(self, request: ChatRequest) -> str:
        edits = request.hints["edits"]
        order = sorted(
            range(len(edits)),
            key=lambda i: (edits[i].get("source_type") != "failure", -edits[i]["support_count"], i),
        )
        chosen = order[: int(request.hints["budget"])]
        obj = {"reasoning": "Failures first, then by support.", "selected_indices": chosen}
        return self._reply(obj, "Ranking:")


def _summary(task_type: str, count: int, description: str) -> dict[str, Any]:
    return {"failure_type": task_type, "count": count, "description": description}
