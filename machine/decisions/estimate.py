"""`skillopt estimate`: what a run will cost before it starts, as a pure function of the
config and the measured sizes of this skill and this dataset.

Calls per role and stage follow the stage graph: a baseline pass over the selection split;
per step the train rollouts, one reflection per minibatch, the merge tree, a ranking (and an
autonomous budget or a rewrite call when configured), a full selection pass for the
candidate; per epoch boundary the review rollouts, the slow update and the meta skill; at the
end the final selection and three test passes. The upper bound assumes every step reaches
its gate with a fresh candidate and nothing is reused; the lower bound assumes early reject
stops a rejected candidate halfway (when on), the test passes share one skill, and the
static part of each prompt (the skill) is read from the provider's prompt cache. Token counts
are characters / 4; reply lengths are stated assumptions (ASSUMED_OUTPUT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from skillopt.machine.config.schema import CacheSettings, Prices, SkilloptConfig
from skillopt.machine.decisions.merge_plan import merge_plan
from skillopt.machine.decisions.spending import cache_prices

ASSUMED_OUTPUT = {  # tokens of a reply, by purpose
    "reflect": 700,
    "merge": 500,
    "rank": 120,
    "budget": 120,
    "rewrite": 1500,
    "slow_update": 500,
    "meta_skill": 500,
    "judge": 80,
}
TRAJECTORY_OVERHEAD = 60  # tokens of a trajectory block around the prompt, reply and answer
PATCH_TOKENS = 250  # tokens of one reflection's patch in a merge or ranking prompt


def tokens(text_chars: float) -> int:
    return int(math.ceil(text_chars / 4))


@dataclass(frozen=True)
class Workload:
    """What the estimate measures before a run: split sizes, the skill's length, the mean
    lengths (characters) of a target prompt and of an expected answer, the optimizer's
    templates by purpose, and a judge's rubric (when the environment has a judge scorer)."""

    sizes: dict[str, int]
    skill_chars: int
    prompt_chars: float
    answer_chars: float
    target_reply_tokens: int
    template_chars: dict[str, int] = field(default_factory=dict)
    judge_chars: int | None = None  # the mean rubric (and system prompt) of a judge scorer
    judge_calls: int = 0  # judge scorers: calls per rollout


@dataclass
class _Tally:
    calls: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # role -> stage -> lo,hi
    tokens: dict[str, list[list[int]]] = field(default_factory=dict)  # role -> [in, out, cached]

    def add(
        self, role: str, stage: str, lo: int, hi: int, tin: int, tout: int, static: int
    ) -> None:
        """lo/hi calls of one kind, each with `tin` input tokens of which `static` may be
        read from the prompt cache (the lower bound counts them cached), `tout` output."""
        row = self.calls.setdefault(role, {}).setdefault(stage, [0, 0])
        row[0] += lo
        row[1] += hi
        t = self.tokens.setdefault(role, [[0, 0], [0, 0], [0, 0], [0, 0]])
        t[0][0], t[0][1] = t[0][0] + lo * tin, t[0][1] + hi * tin
        t[1][0], t[1][1] = t[1][0] + lo * tout, t[1][1] + hi * tout
        t[2][0] += max(0, lo - 1) * static  # the first call writes the cache, the rest read it
        t[3][0] += static if lo else 0


def _cost(
    prices: Prices | None, cache: CacheSettings | None, t: list[list[int]], low: bool
) -> float | None:
    if prices is None:
        return None
    k = 0 if low else 1
    cached, written = t[2][k], t[3][k]
    read_price, write_price = cache_prices(prices, cache)
    fresh = t[0][k] - cached - written
    raw = fresh * prices.input + cached * read_price + written * write_price
    return round((raw + t[1][k] * prices.output) / 1e6, 4)


def _cacheable(config: SkilloptConfig, role: str, static: int) -> int:
    """The tokens a provider caches of a prefix: none under the role's model minimum."""
    settings = getattr(config.models, role, None)
    cache = settings.cache if settings is not None else None
    minimum = (cache.min_prefix_tokens if cache is not None else None) or 0
    return static if static >= minimum else 0


def estimate(config: SkilloptConfig, w: Workload) -> dict[str, Any]:
    t, e, o, g = config.train, config.evaluation, config.optimizer, config.gradient
    n_train, n_sel, n_test = (w.sizes.get(s, 0) for s in ("train", "selection", "test"))
    per_step = min(n_train, t.batch_size * t.accumulation)
    spe = max(1, math.ceil(n_train / (t.batch_size * t.accumulation))) if n_train else 0
    steps = spe * t.num_epochs
    skill = tokens(w.skill_chars)
    target_in = skill + tokens(w.prompt_chars)
    judged = w.judge_chars is not None
    judge_in = (
        tokens((w.judge_chars or 0) + w.prompt_chars + w.answer_chars) + w.target_reply_tokens
    )
    tally = _Tally()
    target_cacheable = _cacheable(config, "target", skill)

    def rollouts(stage: str, lo: int, hi: int) -> None:
        tally.add("target", stage, lo, hi, target_in, w.target_reply_tokens, target_cacheable)
        if judged:
            n = w.judge_calls
            tally.add("judge", stage.replace("rollout", "judge"), n * lo, n * hi, judge_in, 80, 0)

    def ask(purpose: str, lo: int, hi: int, extra_tokens: int) -> None:
        static = tokens(w.template_chars.get(purpose, 0))
        tin = static + skill + extra_tokens
        cacheable = _cacheable(config, "optimizer", static + skill)
        tally.add("optimizer", purpose, lo, hi, tin, ASSUMED_OUTPUT[purpose], cacheable)

    sel_lo = math.ceil(n_sel / 2) if e.early_reject else n_sel
    rollouts("rollout:selection", n_sel, n_sel)  # the baseline
    rollouts("rollout:train", t.num_epochs * n_train, t.num_epochs * n_train)  # each once
    minibatches = math.ceil(per_step / g.minibatch_size) if per_step else 0
    trajectory = tokens(w.prompt_chars + w.answer_chars) + w.target_reply_tokens
    ask(
        "reflect",
        steps * minibatches,
        steps * minibatches,
        g.minibatch_size * (trajectory + TRAJECTORY_OVERHEAD),
    )
    ids = [f"m{k}" for k in range(minibatches)]
    merges = len(merge_plan(ids, [], g.merge_batch_size)[0]) if len(ids) > 1 else 0
    ask("merge", steps * merges, steps * merges, g.merge_batch_size * PATCH_TOKENS)
    ask("rank", 0, steps, minibatches * PATCH_TOKENS)
    if o.lr_control_mode == "autonomous":
        ask("budget", steps, steps, minibatches * PATCH_TOKENS)
    if o.skill_update_mode == "rewrite_from_suggestions":
        ask("rewrite", steps, steps, minibatches * PATCH_TOKENS)
    rollouts("rollout:selection", steps * sel_lo, steps * n_sel)  # each candidate's gate
    boundaries = max(0, t.num_epochs - 1)
    if (o.use_slow_update or o.use_meta_skill) and boundaries:
        review = 2 * min(o.slow_update_samples, n_train)
        rollouts("rollout:review", 0, boundaries * review)
        pairs = min(o.slow_update_samples, n_train) * trajectory
        if o.use_slow_update:
            ask("slow_update", boundaries, boundaries, pairs)
        if o.use_meta_skill:
            ask("meta_skill", boundaries, boundaries, pairs)
    rollouts("rollout:selection", 0, n_sel)  # the final skill, unless its score is cached
    if e.eval_test:
        rollouts("rollout:test", n_test, 3 * n_test)
    roles: dict[str, Any] = {}
    for role, t3 in sorted(tally.tokens.items()):
        settings = getattr(config.models, role)
        prices = settings.prices if settings else None
        cache = settings.cache if settings else None
        roles[role] = {
            "calls": [
                sum(v[0] for v in tally.calls[role].values()),
                sum(v[1] for v in tally.calls[role].values()),
            ],
            "by_stage": {k: v for k, v in sorted(tally.calls[role].items())},
            "input_tokens": t3[0],
            "output_tokens": t3[1],
            "cached_input_tokens": [t3[2][0], 0],
            "usd": [_cost(prices, cache, t3, True), _cost(prices, cache, t3, False)],
        }
    usd = [r["usd"] for r in roles.values()]
    total = (
        None
        if any(u[0] is None for u in usd)
        else [round(sum(u[0] for u in usd), 4), round(sum(u[1] for u in usd), 4)]
    )
    return {
        "sizes": dict(w.sizes),
        "steps": steps,
        "roles": roles,
        "usd": total,
        "assumptions": [
            "tokens = characters / 4",
            f"a target reply: {w.target_reply_tokens} tokens; optimizer replies: "
            + ", ".join(f"{k} {v}" for k, v in ASSUMED_OUTPUT.items() if k != "judge")
            + ("; a judge reply: 80" if judged else ""),
            "upper bound: every step gated on a fresh candidate, nothing reused, no cache",
            "lower bound: "
            + ("early reject stops a candidate halfway; " if e.early_reject else "")
            + "the test passes share one skill; the skill is read from the prompt cache "
            "(written once per kind of call, at the write price), where the prefix reaches "
            "the model's minimum",
        ],
    }
