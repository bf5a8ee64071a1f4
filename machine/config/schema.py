"""The training configuration: sections, defaults, validation and `--set` overrides.

Defaults follow the reference trainer where it has one (section 1.2 of the semantics notes)
and are sized for offline runs where it does not.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from skillopt.machine.config.secrets import carries_credential


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class TrainConfig(_Section):
    num_epochs: int = Field(default=4, ge=1, le=1000)
    batch_size: int = Field(default=40, ge=1, le=100_000)
    accumulation: int = Field(default=1, ge=1, le=1000)
    seed: int = 42
    train_size: int = Field(
        default=0, ge=0, le=10_000_000, description="0 = the size of the train split"
    )
    workers: int = Field(default=8, ge=1, le=1024, description="concurrent rollouts")
    # An execution setting, like workers: the events are the same whichever runs the units.
    executor: Literal["local", "ray"] = Field(
        default="local", description="where per-item work runs: local threads, or Ray tasks"
    )


class GradientConfig(_Section):
    minibatch_size: int = Field(default=8, ge=1, le=10_000)
    merge_batch_size: int = Field(default=8, ge=2, le=10_000)
    failure_only: bool = False
    workers: int = Field(default=8, ge=1, le=1024, description="concurrent reflection calls")


def enum_key(value: str) -> str:
    """A mode as the reference reads it (`str(v).strip().lower()`), and inner spaces or hyphens
    as underscores: `Soft`, ` MIXED `, `Rewrite From Suggestions` all name a mode."""
    return re.sub(r"[\s-]+", "_", value.strip().lower())


def _alias(table: dict[str, str], what: str) -> Any:
    """A before-validator accepting the reference trainer's spellings of a mode."""

    def normalise(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        key = enum_key(value)
        if key not in table:
            choices = ", ".join(sorted(set(table.values())))
            raise ValueError(f"unknown {what} {value!r} (one of {choices})")
        return table[key]

    return field_validator(what, mode="before")(classmethod(lambda cls, v: normalise(v)))


UPDATE_MODES = {
    "patch": "patch",
    "edit": "patch",
    "edits": "patch",
    "rewrite": "rewrite_from_suggestions",
    "rewrite_from_suggestions": "rewrite_from_suggestions",
    "suggestions": "rewrite_from_suggestions",
    "rewrite_suggestions": "rewrite_from_suggestions",
    "full_rewrite": "full_rewrite_minibatch",
    "full_rewrite_minibatch": "full_rewrite_minibatch",
    "minibatch_full_rewrite": "full_rewrite_minibatch",
    "skill_rewrite_minibatch": "full_rewrite_minibatch",
}
LR_CONTROL_MODES = {
    "fixed": "fixed",
    "manual": "fixed",
    "scheduler": "fixed",
    "scheduled": "fixed",
    "autonomous": "autonomous",
    "auto": "autonomous",
    "optimizer": "autonomous",
    "none": "none",
    "off": "none",
    "no_lr": "none",
}
PAIR_POLICIES = {
    "mixed": "mixed",
    "default": "mixed",
    "random": "mixed",
    "all": "mixed",
    "changed": "changed",
    "change": "changed",
    "delta": "changed",
    "10_01": "changed",
    "01_10": "changed",
    "unchanged": "unchanged",
    "stable": "unchanged",
    "same": "unchanged",
    "00_11": "unchanged",
}


class OptimizerConfig(_Section):
    learning_rate: int = Field(
        default=4, ge=1, le=10_000, description="max edits per step and per minibatch"
    )
    min_learning_rate: int = Field(default=2, ge=0, le=10_000)
    lr_scheduler: Literal["constant", "linear", "cosine", "autonomous"] = Field(
        default="cosine",
        description="autonomous: the reference's scheduler that allows 999 edits a step (no "
        "optimizer call; that is lr_control_mode: autonomous)",
    )
    lr_control_mode: Literal["fixed", "autonomous", "none"] = Field(
        default="fixed", description="fixed: the schedule; autonomous: an optimizer call; none"
    )
    skill_update_mode: Literal["patch", "rewrite_from_suggestions", "full_rewrite_minibatch"] = (
        "patch"
    )
    use_step_buffer: bool = Field(
        default=True, description="show earlier steps of the epoch to reflection/budget/rewrite"
    )
    use_slow_update: bool = True
    slow_update_samples: int = Field(default=20, ge=1, le=100_000)
    slow_update_gate_with_selection: bool = False
    longitudinal_pair_policy: Literal["mixed", "changed", "unchanged"] = "mixed"
    use_meta_skill: bool = True
    use_skill_aware_reflection: bool = False
    skill_aware_appendix_source: Literal["both", "failure_only"] = "both"
    skill_aware_consolidate_threshold: int = Field(default=0, ge=0, description="0 = never")
    max_unusable_steps: int | None = Field(
        default=2,
        ge=0,
        description="stop after this many steps in a row whose reflection replies were all "
        "unusable (0: never stop); unset in runs recorded before the rule",
    )
    appendix_gated: bool = Field(
        default=False, description="route appendix flushes through the gate (not in reference)"
    )

    _modes = _alias(UPDATE_MODES, "skill_update_mode")
    _lr_modes = _alias(LR_CONTROL_MODES, "lr_control_mode")
    _policies = _alias(PAIR_POLICIES, "longitudinal_pair_policy")
    _enums = field_validator("lr_scheduler", "skill_aware_appendix_source", mode="before")(
        classmethod(lambda cls, v: enum_key(v) if isinstance(v, str) else v)
    )

    @property
    def control(self) -> str:
        """How the edit budget is decided, as config_version <= 2 read it: a full rewrite has
        none (as the reference), and `none` kept every merged edit. See
        SkilloptConfig.budget_control for what version 3 reads."""
        return (
            "none" if self.skill_update_mode == "full_rewrite_minibatch" else self.lr_control_mode
        )

    @model_validator(mode="after")
    def _floor_below_max(self) -> OptimizerConfig:
        if self.min_learning_rate > self.learning_rate:
            raise ValueError(
                f"min_learning_rate ({self.min_learning_rate}) exceeds "
                f"learning_rate ({self.learning_rate})"
            )
        return self


# The reference's leading words (evaluation.leading_words unset).
LEADING_WORDS = (
    "MUST",
    "ALWAYS",
    "NEVER",
    "ONLY",
    "CRITICAL",
    "IMPORTANT",
    "RESOLVE",
    "PREFER",
    "ENSURE",
    "STRICT",
    "VERIFY",
)


class EvaluationConfig(_Section):
    use_gate: bool = True
    gate_metric: Literal["hard", "soft", "mixed"] = "hard"
    gate_mixed_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    use_semantic_density: bool = Field(
        default=False,
        description="add semantic_density_weight x the share of the skill's words that are "
        "leading words to every selection gate score (the reference's bonus)",
    )
    semantic_density_weight: float = Field(default=0.05, ge=0.0, le=1000.0)
    leading_words: list[str] | None = Field(
        default=None,
        description="unset: the reference's MUST, ALWAYS, NEVER, ...; a list or "
        "a comma-separated string",
    )
    sel_env_num: int = Field(
        default=0, ge=0, le=10_000_000, description="0 = the whole selection split"
    )
    test_env_num: int = Field(
        default=0, ge=0, le=10_000_000, description="0 = the whole test split"
    )
    min_selection_items: int = Field(
        default=20, ge=0, description="init warns when the selection split is smaller"
    )
    eval_test: bool = True
    early_reject: bool = Field(
        default=True,
        description="stop a gated skill's selection rollout once it provably cannot pass "
        "(same verdicts; a rejected skill then has no full selection score); off before "
        "config_version 4",
    )
    early_reject_order: Literal["plan", "weakest_first"] = Field(
        default="plan",
        description="early reject's item order: the selection split's, or the items the current "
        "skill scores lowest on first (where a losing candidate's losses show soonest)",
    )
    gate_rule: Literal["strict", "paired"] = Field(
        default="strict",
        description="strict: candidate > current; paired: the mean per-item gain over the "
        "current skill must exceed gate_margin standard errors",
    )
    gate_margin: float = Field(default=1.0, ge=0.0, description="paired: standard errors")
    reuse_rollouts: bool = Field(
        default=True,
        description="a stage that needs a rollout a recorded one of the same skill on the same "
        "item already gave (the epoch-end review after a train step) records a reuse pointing "
        "at it instead of paying again; false: fresh samples; off before config_version 4",
    )

    _enums = field_validator("gate_metric", "early_reject_order", "gate_rule", mode="before")(
        classmethod(lambda cls, v: enum_key(v) if isinstance(v, str) else v)
    )

    @field_validator("leading_words", mode="before")
    @classmethod
    def _words(cls, value: Any) -> Any:
        # The reference takes a list, or a comma-separated string split and stripped.
        if isinstance(value, str):
            return [w.strip() for w in value.split(",") if w.strip()]
        return value

    @model_validator(mode="after")
    def _density_with_strict_rule(self) -> EvaluationConfig:
        # The bonus is one number per skill added to its mean score (the reference's rule);
        # the paired rule compares items, where a per-skill bonus has no place.
        if self.use_semantic_density and self.gate_rule == "paired":
            raise ValueError(
                "use_semantic_density adds a bonus to the strict gate's scores; it does not "
                "combine with gate_rule: paired"
            )
        return self

    def words(self) -> tuple[str, ...]:
        return LEADING_WORDS if self.leading_words is None else tuple(self.leading_words)


class EnvConfig(_Section):
    name: str
    skill_init: str = Field(description="path of the initial skill, relative to the config file")
    split_dir: str | None = Field(
        default=None, description="directory with train/ val/ test/ items.json (reference layout)"
    )
    data_path: str | None = Field(
        default=None, description="one JSON/JSONL file split by split_ratio and split_seed"
    )
    split_ratio: str = Field(default="2:1:7", description="train:selection:test for data_path")
    split_sizes: str | None = Field(
        default=None,
        description="train:selection:test as row counts for data_path (instead of the ratio)",
    )
    split_seed: int = 42
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("split_ratio")
    @classmethod
    def _three_parts(cls, value: str) -> str:
        parts = value.split(":")
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) != 3 or any(n < 0 for n in numbers) or sum(numbers) <= 0:
            raise ValueError("expected train:selection:test, e.g. 2:1:7")
        return value

    @field_validator("split_sizes")
    @classmethod
    def _three_counts(cls, value: str | None) -> str | None:
        parts = [] if value is None else value.split(":")
        if value is not None and (len(parts) != 3 or not all(p.strip().isdigit() for p in parts)):
            raise ValueError("expected train:selection:test row counts, e.g. 40:20:40")
        return value

    def sizes(self) -> tuple[int, int, int] | None:
        if self.split_sizes is None:
            return None
        a, b, c = (int(p) for p in self.split_sizes.split(":"))
        return (a, b, c)

    @model_validator(mode="after")
    def _one_source(self) -> EnvConfig:
        if self.split_dir is not None and self.data_path is not None:
            raise ValueError("set env.split_dir or env.data_path, not both")
        return self

    def ratio(self) -> tuple[float, float, float]:
        a, b, c = (float(p) for p in self.split_ratio.split(":"))
        return (a, b, c)


class Prices(_Section):
    """Prices per million tokens, in whatever currency you bill in."""

    input: float = Field(ge=0.0)
    output: float = Field(ge=0.0)
    cached_input: float | None = Field(default=None, ge=0.0, description="unset: the input price")


class CacheSettings(_Section):
    """A role's prompt-cache rules: the built-in model table's (machine/config/models_table.py)
    unless given; `init` records what it assumed, so a run's report never changes with it."""

    min_prefix_tokens: int | None = Field(
        default=None, ge=0, description="the shortest prefix the provider caches"
    )
    write_price: float | None = Field(
        default=None, ge=0.0, description="per million tokens written; unset: the input price"
    )
    read_price: float | None = Field(
        default=None, ge=0.0, description="per million tokens read; unset: prices.cached_input"
    )


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class RoleConfig(_Section):
    backend: str = Field(
        default="offline", description="offline | anthropic | openai | azure | a plugin"
    )
    model: str = Field(default="offline", description="model name (Azure: the deployment)")
    base_url: str | None = Field(default=None, description="endpoint; an OpenAI-compatible server")
    api_key_env: str | None = Field(
        default=None, description="NAME of the env variable with the key"
    )
    api_version: str | None = Field(default=None, description="Azure OpenAI api-version")
    temperature: float | None = Field(default=None, ge=0.0, description="None: provider default")
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="reply limit of every call of the role; unset: the environment's own for "
        "target calls, 4096 for the optimizer's and the judge's",
    )
    reasoning_effort: str | None = None
    timeout_s: float = Field(default=120.0, gt=0, le=86_400)
    max_attempts: int = Field(
        default=4, ge=1, le=100, description="attempts per call, retries included"
    )
    max_concurrency: int = Field(
        default=8, ge=1, le=1024, description="in-flight calls per endpoint"
    )
    requests_per_minute: float | None = Field(default=None, gt=0, description="per endpoint")
    retry_base_s: float = Field(default=0.5, ge=0, description="first backoff; doubles, jittered")
    retry_deadline_s: float = Field(
        default=600.0, gt=0, le=86_400, description="give up a call after this"
    )
    prices: Prices | None = None
    cache: CacheSettings | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("api_key_env")
    @classmethod
    def _a_name_not_a_key(cls, value: str | None) -> str | None:
        # Never echo the value: if it is not a variable name it may well be the key itself.
        looks_random = (
            len(value or "") >= 24
            and any(c.isdigit() for c in value or "")
            and any(c.islower() for c in value or "")
        )
        if value is not None and (not _ENV_NAME.match(value) or looks_random):
            raise ValueError(
                "must be the NAME of an environment variable (letters, digits, _), not a key"
            )
        return value


class ModelsConfig(_Section):
    target: RoleConfig = RoleConfig()
    optimizer: RoleConfig = RoleConfig()
    judge: RoleConfig | None = Field(
        default=None, description="the model of `judge` scorers (the task environment)"
    )


class BudgetConfig(_Section):
    max_usd: float | None = Field(default=None, ge=0.0, description="cost limit (needs prices)")
    max_tokens: int | None = Field(default=None, ge=0, description="token limit, all roles")


class TrackingConfig(_Section):
    """Where the run is mirrored while it trains; nothing here changes a decision, so a run
    recorded before the section existed reads it as absent (nothing logged)."""

    mlflow_uri: str | None = Field(
        default=None,
        min_length=1,
        description="MLflow tracking URI (sqlite:///mlflow.db, http://host:5000); none: no logging",
    )
    mlflow_experiment: str | None = Field(
        default=None, min_length=1, description="MLflow experiment name (default: skillopt)"
    )

    @field_validator("mlflow_uri")
    @classmethod
    def _no_password(cls, uri: str | None) -> str | None:
        # The resolved config is recorded in the ledger: a password in it would be kept forever.
        if uri is not None and carries_credential(uri):
            raise ValueError(
                "holds a password; set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
                "in the environment instead"
            )
        return uri


class RayConfig(_Section):
    """How per-item work runs on Ray (train.executor: ray). Execution settings: nothing here
    changes what a run decides or records, so a fork may change any of them."""

    address: str = Field(
        default="",
        description="empty: start a local Ray instance; auto or ray://host:port: join a cluster",
    )
    num_cpus_per_rollout: float = Field(default=1.0, gt=0, le=1024)
    max_retries: int = Field(
        default=3, ge=0, le=100, description="runs again of a unit whose worker died"
    )
    env_vars: list[str] = Field(
        default_factory=list,
        description="NAMES of driver environment variables the workers get (the roles' "
        "api_key_env always go)",
    )
    runtime_env: dict[str, Any] = Field(
        default_factory=dict,
        description="the workers' Ray runtime environment (pip, py_modules, working_dir...)",
    )

    @field_validator("env_vars")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _ENV_NAME.match(name):  # never echo it: it may be a value
                raise ValueError("must list NAMES of environment variables (letters, digits, _)")
        return names

    @field_validator("runtime_env")
    @classmethod
    def _no_values(cls, env: dict[str, Any]) -> dict[str, Any]:
        # The config is recorded in the ledger: a variable's value here would be kept forever.
        if "env_vars" in env:
            raise ValueError(
                "env_vars is not read from the config (it is recorded): name the variables "
                "in ray.env_vars and their values come from the driver's environment"
            )
        return env


# 2: models.<role>.max_tokens reaches the target's and the judge's calls.
# 3: the reference trainer's behaviour where ours differed by accident (issue 16): insert_after
#    layout, the schedule of a one-step run, the epoch-1 SLOW_UPDATE placeholder keeps existing
#    guidance, appendix notes read from every line and keyed as the reference keys them, stray
#    SLOW_UPDATE markers, lr_control_mode none applies the schedule outside a full rewrite, and
#    largest-remainder ties go to the larger ratio part. Runs recorded before keep the old rules.
# 4 (issue 14): a reflection request declares the reply schema of the active update mode only
#    (lean_optimizer_input), not all three modes'; early reject is on by default and
#    trajectory-neutral: the step buffer shows a rejected candidate's verdict and edits, never
#    its (possibly partial) selection score; the epoch-end review reuses recorded train
#    rollouts of the same skill (evaluation.reuse_rollouts).
CONFIG_VERSION = 4

# Defaults that changed with a config version: a config of an older version that leaves such a
# key out means the default of its own version (key -> (version that changed it, old default)).
DEFAULTS_BEFORE: dict[str, tuple[int, Any]] = {
    "evaluation.early_reject": (4, False),
    "evaluation.reuse_rollouts": (4, False),
}


class SkilloptConfig(_Section):
    # What the recorded settings mean: a run recorded by an older skillopt keeps its meaning.
    config_version: int = Field(default=CONFIG_VERSION, ge=1, le=CONFIG_VERSION)
    train: TrainConfig = TrainConfig()
    gradient: GradientConfig = GradientConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    env: EnvConfig
    models: ModelsConfig = ModelsConfig()
    budget: BudgetConfig = BudgetConfig()
    tracking: TrackingConfig = TrackingConfig()
    ray: RayConfig = RayConfig()

    @model_validator(mode="before")
    @classmethod
    def _defaults_of_its_version(cls, data: Any) -> Any:
        """An older config_version reads a key it leaves out with that version's default."""
        if not isinstance(data, dict):
            return data
        version = data.get("config_version", CONFIG_VERSION)
        for path, (since, old) in DEFAULTS_BEFORE.items():
            if isinstance(version, int) and version < since:
                data = _with_default(dict(data), path.split("."), old)
        return data

    @property
    def neutral_gates(self) -> bool:
        """Whether nothing a later prompt or decision reads depends on how many selection items
        a rejected candidate was scored on (version 4: the step buffer shows no candidate
        score), so early reject changes only the rollouts it does not pay for."""
        return self.config_version >= 4

    @property
    def reuses_rollouts(self) -> bool:
        """Whether a recorded rollout of the same skill on the same item is reused (the key's
        default is off before version 4)."""
        return self.evaluation.reuse_rollouts

    @property
    def parity(self) -> bool:
        """Whether this run follows the reference where version <= 2 differed (issue 16)."""
        return self.config_version >= 3

    @property
    def lean_optimizer_input(self) -> bool:
        """Whether reflection requests declare the active update mode's schema alone (issue
        14): the request is recorded in the call journal, so earlier runs keep the full one."""
        return self.config_version >= 4

    @property
    def budget_control(self) -> str:
        """How the edit budget is decided: `fixed` (the schedule), `autonomous` (an optimizer
        call) or `none` (every merged edit). As the reference: a full rewrite has no budget,
        and from version 3 `none` in patch or rewrite mode still applies the schedule."""
        control = self.optimizer.control
        if (
            self.parity
            and control == "none"
            and self.optimizer.skill_update_mode != ("full_rewrite_minibatch")
        ):
            return "fixed"
        return control

    @model_validator(mode="after")
    def _prices_for_a_cost_budget(self) -> SkilloptConfig:
        if self.budget.max_usd is not None:
            for role in ("target", "optimizer", "judge"):
                settings = getattr(self.models, role)
                if settings is not None and settings.prices is None:
                    raise ValueError(f"budget.max_usd needs models.{role}.prices")
        return self


def default_of(key: str) -> Any:
    """The current default of a `section.key` (DEFAULTS_BEFORE says what it was before)."""
    section, name = key.split(".")
    return getattr(SkilloptConfig.model_fields[section].default, name)


class ConfigError(ValueError):
    """A config problem, worded as one line that names the key path."""


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


# Keys added after the first release whose default is "on": a recorded config without them
# predates the mechanism, so its run must go on (and verify) without it.
# What a key absent from a recorded config meant: the behaviour before the key existed.
LEGACY: dict[str, Any] = {
    "optimizer.use_step_buffer": False,
    "optimizer.use_slow_update": False,
    "optimizer.use_meta_skill": False,
    "optimizer.max_unusable_steps": None,  # all-unusable steps were no_patches; no stop
    "models.judge": None,  # no judge role
    # no density bonus (and the keys a fork must not change mean no change when absent)
    "evaluation.use_semantic_density": False,
    "evaluation.semantic_density_weight": 0.05,
    "evaluation.leading_words": None,
    "train.executor": "local",  # before Ray, every unit ran in the driver's threads
    "evaluation.reuse_rollouts": False,  # every rollout paid for
    "config_version": 1,  # before 2, a role's max_tokens reached only the optimizer's calls
}


def _with_default(data: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    head, *rest = path
    inner = data.get(head)
    if not rest:
        return data if head in data else {**data, head: value}
    if inner is not None and not isinstance(inner, dict):
        return data  # not a section: validation names it
    return {**data, head: _with_default(dict(inner or {}), rest, value)}


def recorded_config(data: dict[str, Any]) -> SkilloptConfig:
    """The config a run.created (or settings.changed) recorded, read as it was meant then."""
    for path, value in LEGACY.items():
        data = _with_default(dict(data), path.split("."), value)
    return validate_config(data)


def validate_config(data: Any) -> SkilloptConfig:
    if not isinstance(data, dict):
        raise ConfigError("config must be a mapping of sections (train, env, models, ...)")
    models = data.get("models")
    for role, section in models.items() if isinstance(models, dict) else []:
        if isinstance(section, dict) and any("key" in k and k != "api_key_env" for k in section):
            raise ConfigError(
                f"models.{role}: API keys are never read from a config file; put the key in an "
                "environment variable and name it in api_key_env"
            )
    try:
        return SkilloptConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = _loc(err["loc"])
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"{where}: unknown key") from None
        if err["type"] == "missing":
            raise ConfigError(f"{where}: required key is missing") from None
        got = err.get("input")
        # a misplaced key, or a URL's password, must not be echoed
        secret = where.endswith("api_key_env") or where == "tracking.mlflow_uri"
        suffix = "" if isinstance(got, dict) or secret else f" (got {got!r})"
        raise ConfigError(f"{where}: {err['msg']}{suffix}") from None


def cast_value(text: str) -> Any:
    """`--set` values: true/false, int, float, else the string itself; quotes force a string."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def apply_override(data: dict[str, Any], assignment: str) -> dict[str, Any]:
    """Return a copy of `data` with `key.path=value` set (sections are created as needed)."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected key.path=value")
    path, value = assignment.split("=", 1)
    keys = [k for k in path.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"--set {assignment!r}: empty key path")
    out = dict(data)
    node = out
    for i, key in enumerate(keys[:-1]):
        child = node.get(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {path}: {'.'.join(keys[: i + 1])} is not a section")
        node[key] = dict(child)
        node = node[key]
    node[keys[-1]] = cast_value(value)
    return out
