"""The reference trainer's config (microsoft/SkillOpt) read as ours: its sections, key names,
flat legacy keys and backend labels, mapped onto our schema. Pure: dicts in, dicts out.

One loader reads both formats; a key means the same in both wherever both have it. The work
comes in two steps because `_base_` inheritance (commands/config_files.py) sits between them:

1. `normalize` (per file, before merging) renames every key that is a plain alias of one of
   ours: flat keys (`edit_budget`), `gradient.analyst_workers`, `env.workers`, benchmark keys
   under `env` (-> `env.options`). A child then overrides its base whichever spelling each
   uses. `--set` paths get the same renaming (`canonical_assignment`).
2. `to_skillopt` (once, on the merged config after `--set`) redacts secret-looking values and
   maps what needs the whole picture: the `model` section (-> `models.target/optimizer`),
   `env.split_mode`, keys we ignore. It returns our dict and the warnings run.created records.

A file in our own format passes through both steps unchanged (apart from redaction).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from skillopt.machine.config.schema import ConfigError, EnvConfig, SkilloptConfig

REDACTED = "<redacted>"

# --- secrets ----------------------------------------------------------------------------------

# A key is secret-looking when one of its words (split at _ - . and camelCase) ends with one of
# these: api_key, apiKey, auth_token, client_secret, password. `max_tokens` also matches, but
# only non-empty strings are redacted, and a string there is refused by the schema anyway;
# `tokenizer` or `keyword` do not match.
_SECRET_WORD = re.compile(r"(key|token|secret|password|passwd|passphrase|credential)s?$")
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def is_secret_key(key: str) -> bool:
    return any(_SECRET_WORD.search(w.lower()) for w in _WORD_SPLIT.split(key) if w)


def _names_a_variable(key: str, value: Any) -> bool:
    """`api_key_env: OPENAI_API_KEY` holds a variable NAME, which is not a secret (a value that
    looks like a key itself is still redacted)."""
    if not (key.lower().endswith("_env") and isinstance(value, str)):
        return False
    looks_random = (
        len(value) >= 24 and any(c.isdigit() for c in value) and any(c.islower() for c in value)
    )
    return bool(_VAR_NAME.match(value)) and not looks_random


def redact(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy with every non-empty string under a secret-looking key replaced by REDACTED, and
    the dotted paths of what was replaced."""
    found: list[str] = []

    def walk(value: Any, where: str, secret: bool) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, inner in value.items():
                path = f"{where}.{k}" if where else str(k)
                hidden = is_secret_key(str(k)) and not _names_a_variable(str(k), inner)
                out[k] = walk(inner, path, hidden)
            return out
        if isinstance(value, list):
            if secret and any(isinstance(v, str) and v and v != REDACTED for v in value):
                found.append(where)
                return [REDACTED if isinstance(v, str) and v else v for v in value]
            return [walk(v, f"{where}[{n}]", False) for n, v in enumerate(value)]
        if secret and isinstance(value, str) and value and value != REDACTED:
            found.append(where)
            return REDACTED
        return value

    return walk(data, "", False), found


def shown(key: str, value: Any) -> str:
    """A value for a message: never the value of a secret-looking key."""
    return "(value hidden)" if is_secret_key(key) else repr(value)


# --- step 1: aliases, per file -------------------------------------------------------------------

OUR_SECTIONS = (
    "train",
    "gradient",
    "optimizer",
    "evaluation",
    "env",
    "models",
    "budget",
    "tracking",
)
REFERENCE_SECTIONS = ("model", "human_feedback")
_ENV_FIELDS = frozenset(EnvConfig.model_fields)
# Reference env keys handled in step 2 (everything else unknown under env is a benchmark option).
_ENV_REFERENCE = frozenset({"split_mode", "split_output_dir", "out_root", "limit"})
# Top-level keys of our own schema that are not sections (config_version).
_TOP_FIELDS = frozenset(SkilloptConfig.model_fields) - frozenset(OUR_SECTIONS)

ALIASES: dict[tuple[str, str], tuple[str, ...]] = {
    ("gradient", "analyst_workers"): ("gradient", "workers"),
    ("optimizer", "edit_budget"): ("optimizer", "learning_rate"),
    ("optimizer", "min_edit_budget"): ("optimizer", "min_learning_rate"),
    ("optimizer", "meta_edit_budget"): ("optimizer", "meta_learning_rate"),
    ("env", "workers"): ("train", "workers"),  # the benchmark's concurrent rollouts
    ("env", "train_size"): ("train", "train_size"),  # the reference's flattening made it so
    ("env", "exec_timeout"): ("models", "target", "timeout_s"),  # per target call, seconds
    ("model", "azure_endpoint"): ("model", "azure_openai_endpoint"),  # legacy spellings
    ("model", "azure_api_version"): ("model", "azure_openai_api_version"),
    ("model", "azure_api_key"): ("model", "azure_openai_api_key"),
}

_ROLE_FAMILIES: dict[str, tuple[str, ...]] = {
    "azure_openai": (
        "endpoint",
        "api_version",
        "api_key",
        "auth_mode",
        "ad_scope",
        "managed_identity_client_id",
    ),
    "qwen_chat": (
        "base_url",
        "api_key",
        "temperature",
        "timeout_seconds",
        "max_tokens",
        "enable_thinking",
    ),
    "openai_compatible": (
        "base_url",
        "api_key",
        "model",
        "temperature",
        "timeout_seconds",
        "max_tokens",
    ),
}
_CODEX = (
    "path",
    "sandbox",
    "profile",
    "full_auto",
    "reasoning_effort",
    "use_sdk",
    "network_access",
    "web_search",
    "approval_policy",
)
_CLAUDE_CODE = ("path", "profile", "use_sdk", "effort", "max_thinking_tokens")
_MINIMAX = ("base_url", "api_key", "model", "temperature", "max_tokens", "enable_thinking")
MODEL_KEYS = frozenset(
    {
        "backend",
        "optimizer",
        "target",
        "optimizer_backend",
        "target_backend",
        "reasoning_effort",
        "rewrite_reasoning_effort",
        "rewrite_max_completion_tokens",
        "codex_trace_to_optimizer",
        *(f"codex_exec_{k}" for k in _CODEX),
        *(f"claude_code_exec_{k}" for k in _CLAUDE_CODE),
        *(f"minimax_{k}" for k in _MINIMAX),
        *(
            f"{role}{family}_{field}"
            for family, fields in _ROLE_FAMILIES.items()
            for field in fields
            for role in ("", "optimizer_", "target_")
        ),
    }
)

_FLAT_SECTIONS: dict[str, tuple[str, ...]] = {
    "train": ("num_epochs", "train_size", "steps_per_epoch", "batch_size", "accumulation", "seed"),
    "gradient": ("minibatch_size", "merge_batch_size", "failure_only", "max_analyst_rounds"),
    "optimizer": (
        "lr_scheduler",
        "lr_control_mode",
        "skill_update_mode",
        "use_slow_update",
        "slow_update_samples",
        "slow_update_gate_with_selection",
        "longitudinal_pair_policy",
        "use_meta_skill",
        "use_skill_aware_reflection",
        "skill_aware_appendix_source",
        "skill_aware_consolidate_threshold",
    ),
    "evaluation": (
        "use_gate",
        "gate_metric",
        "gate_mixed_weight",
        "use_semantic_density",
        "semantic_density_weight",
        "leading_words",
        "sel_env_num",
        "test_env_num",
        "eval_test",
    ),
    "env": (
        "skill_init",
        "split_mode",
        "split_ratio",
        "split_seed",
        "split_dir",
        "data_path",
        "split_output_dir",
        "out_root",
        "limit",
    ),
}
# The reference's flat (legacy) format: every key at the top level.
FLAT: dict[str, tuple[str, ...]] = {
    **{k: (section, k) for section, keys in _FLAT_SECTIONS.items() for k in keys},
    **{k: ("model", k) for k in MODEL_KEYS if k not in ("backend", "optimizer", "target")},
    "backend": ("model", "backend"),
    "model_backend": ("model", "backend"),
    "optimizer_model": ("model", "optimizer"),
    "target_model": ("model", "target"),
    "analyst_workers": ("gradient", "workers"),
    "edit_budget": ("optimizer", "learning_rate"),
    "min_edit_budget": ("optimizer", "min_learning_rate"),
    "meta_edit_budget": ("optimizer", "meta_learning_rate"),
    "workers": ("train", "workers"),
    "exec_timeout": ("models", "target", "timeout_s"),
}


def _benchmark_key(key: str) -> bool:
    """A top-level key that is neither ours nor the reference's: in the reference's flat format
    every such key reaches the benchmark (`max_turns: 7`), so it goes to `env.options`, where
    the environment accepts it or names it."""
    return (
        key not in FLAT
        and key not in OUR_SECTIONS + REFERENCE_SECTIONS + ("env",)
        and (key not in _TOP_FIELDS and not key.startswith("_"))
    )


def canonical_path(path: tuple[str, ...]) -> tuple[str, ...]:
    """Where a key path lands in our spelling (unchanged if it is ours or not an alias)."""
    if len(path) == 1 and path[0] in FLAT:
        return FLAT[path[0]]
    if len(path) == 1 and _benchmark_key(path[0]):
        return ("env", "options", path[0])
    if len(path) >= 2:
        head = (path[0], path[1])
        if head in ALIASES:
            return ALIASES[head] + path[2:]
        if path[0] == "env" and path[1] not in _ENV_FIELDS | _ENV_REFERENCE:
            return ("env", "options", *path[1:])  # a benchmark's own key
    return path


def canonical_assignment(assignment: str) -> str:
    """A `--set key.path=value` with the key path in our spelling."""
    if "=" not in assignment:
        return assignment  # apply_override names the problem
    path, value = assignment.split("=", 1)
    keys = tuple(k for k in path.strip().split(".") if k)
    if not keys:
        return assignment
    target = ("env", "name") if keys == ("env",) else canonical_path(keys)
    return ".".join(target) + "=" + value


def normalize(data: dict[str, Any]) -> dict[str, Any]:
    """One file's keys in our spelling. Two spellings of one key with different values in the
    same file are an error naming both."""
    out: dict[str, Any] = {}
    written: dict[tuple[str, ...], str] = {}

    def place(path: tuple[str, ...], value: Any, as_written: str) -> None:
        node = out
        for i, key in enumerate(path[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{as_written}: {'.'.join(path[: i + 1])} is not a section")
            node = child
        last = path[-1]
        if last in node:
            old = node[last]
            if isinstance(old, dict) and isinstance(value, dict):
                for k, v in value.items():
                    place((*path, str(k)), v, f"{as_written}.{k}")
                return
            if old != value:
                first = written.get(path, ".".join(path))
                raise ConfigError(
                    f"{as_written} and {first} are the same setting with different values "
                    f"({shown(last, value)} and {shown(last, old)}); keep one"
                )
            return
        node[last] = copy.deepcopy(value)
        written[path] = as_written

    for top, value in data.items():
        top = str(top)
        if top == "env" and isinstance(value, str):  # flat format: env: <name>
            place(("env", "name"), value, "env")
        elif top in FLAT:
            place(FLAT[top], value, top)
        elif top in OUR_SECTIONS + REFERENCE_SECTIONS and isinstance(value, dict | None):
            place((top,), {}, top)  # an empty section (only comments) is an empty mapping
            for key, inner in (value or {}).items():
                place(canonical_path((top, str(key))), inner, f"{top}.{key}")
        elif _benchmark_key(top) and not isinstance(value, dict):
            # A mapping is more likely a misspelt section than a benchmark option: validation
            # names it; anything else is the benchmark's, as in the reference's flat format.
            place(("env", "options", top), value, top)
        else:
            place((top,), value, top)  # unknown or malformed: validation names it
    return out


def deep_merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """`child` over `base`: mappings merge key by key, anything else is replaced (lists too)."""
    out = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --- step 2: the merged config ---------------------------------------------------------------

# Values of ignored keys that change nothing: the reference's own defaults.
REFERENCE_DEFAULTS: dict[str, Any] = {
    "rewrite_max_completion_tokens": 64000,
    "codex_exec_path": "codex",
    "codex_exec_sandbox": "workspace-write",
    "codex_exec_reasoning_effort": "none",
    "codex_exec_use_sdk": "auto",
    "codex_exec_approval_policy": "never",
    "claude_code_exec_path": "claude",
    "claude_code_exec_use_sdk": "auto",
    "claude_code_exec_effort": "medium",
    "claude_code_exec_max_thinking_tokens": 16384,
    "codex_trace_to_optimizer": True,
    "azure_openai_api_version": "2024-12-01-preview",
    "azure_openai_auth_mode": "azure_cli",
    "azure_openai_ad_scope": "https://cognitiveservices.azure.com/.default",
}
DEFAULT_AZURE_API_VERSION = "2024-12-01-preview"
_OPENAI_SENTINELS = ("gpt-5.4", "gpt-5.5")  # the reference's default model names
_AAD_MODES = ("azure_cli", "managed_identity", "aad", "azure_ad")
_COMPAT_MODES = ("openai_compatible", "compat", "openai")
_LABEL_ALIASES = {
    "azure_openai": "openai_chat",
    "claude": "claude_chat",
    "qwen": "qwen_chat",
    "minimax": "minimax_chat",
    "codex": "codex_exec",
    "copilot": "copilot_chat",
}
# Labels of model.backend that fill only the target role (the optimizer stays openai_chat).
_TARGET_ONLY = ("claude_code_exec", "cursor_exec", "copilot_exec", "qwen_chat", "minimax_chat")
SUPPORTED = (
    "openai_chat (azure with model.azure_openai_endpoint; openai with auth_mode "
    "openai_compatible), openai_compatible and qwen_chat (openai with a base_url), claude_chat "
    "(anthropic), or skillopt's own offline, openai, azure, anthropic"
)


class _Notes:
    """Warnings in the order they arise, plus one line for keys dropped without effect."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.quiet: list[str] = []

    def warn(self, line: str) -> None:
        if line not in self.lines:
            self.lines.append(line)

    def dropped(self, path: str, value: Any, reason: str, quiet: bool = False) -> None:
        bare = path.rsplit(".", 1)[-1].removeprefix("optimizer_").removeprefix("target_")
        default = REFERENCE_DEFAULTS.get(bare, object())
        noop = value in (None, "", False, [], {}) or (
            type(value) is type(default) and value == default
        )
        if quiet or noop or value == REDACTED:
            if value != REDACTED:  # a secret already has its own warning
                self.quiet.append(path)
        else:
            self.warn(f"{path}: {reason}; ignored ({shown(bare, value)})")

    def result(self) -> list[str]:
        if not self.quiet:
            return list(self.lines)
        return [
            *self.lines,
            "ignored, no effect here (empty, the reference's default, or unused by the "
            "reference itself): " + ", ".join(sorted(set(self.quiet))),
        ]


def _label(value: Any) -> str:
    text = str(value).strip().lower()
    return _LABEL_ALIASES.get(text, text)


class _ModelSection:
    """Reads the reference's `model` section, remembering which keys were consulted."""

    def __init__(self, model: dict[str, Any]) -> None:
        self.model = model
        self.used: set[str] = set()

    def get(self, key: str) -> Any:
        self.used.add(key)
        value = self.model.get(key)
        return None if value in (None, "") else value

    def role_get(self, role: str, key: str) -> tuple[Any, str]:
        """The role's own `<role>_<key>`, else the shared `<key>`; with the key that gave it."""
        own = self.get(f"{role}_{key}")
        if own is not None:
            return own, f"model.{role}_{key}"
        return self.get(key), f"model.{key}"

    def sampling(self, role: str, family: str) -> dict[str, Any]:
        out = {}
        for field, ours in (
            ("temperature", "temperature"),
            ("timeout_seconds", "timeout_s"),
            ("max_tokens", "max_tokens"),
        ):
            value, _ = self.role_get(role, f"{family}_{field}")
            if value is not None:
                out[ours] = value
        return out

    def backend(self, role: str) -> tuple[str, str, Any]:
        """(backend label, the key that set it, its value as written). A role still at the
        reference's default (unset, "" or openai_chat) takes model.backend's label."""
        explicit = self.get(f"{role}_backend")
        label = self.get("backend")
        if explicit is not None and _label(explicit) != "openai_chat":
            return _label(explicit), f"model.{role}_backend", explicit
        if label is not None and (role == "target" or _label(label) not in _TARGET_ONLY):
            return _label(label), "model.backend", label
        return "openai_chat", f"model.{role}_backend", explicit or "openai_chat"


def _map_role(m: _ModelSection, role: str, notes: _Notes, aad: dict[str, list[str]]) -> dict:
    backend, source, written = m.backend(role)
    name = m.get(role)
    send_effort = True
    out: dict[str, Any]
    if backend == "offline":
        out = {"backend": "offline", "model": name or "offline"}
    elif backend in ("openai_chat", "azure"):
        endpoint, _ = m.role_get(role, "azure_openai_endpoint")
        mode, mode_key = m.role_get(role, "azure_openai_auth_mode")
        mode_l = str(mode).strip().lower() if mode is not None else None
        if backend == "openai_chat" and mode_l in _COMPAT_MODES:
            if endpoint is None:
                raise ConfigError(
                    f"{mode_key}: {mode!r} needs the server's URL in "
                    f"model.{role}_azure_openai_endpoint or model.azure_openai_endpoint"
                )
            out = {"backend": "openai", "base_url": endpoint}
        elif endpoint is not None:
            version, _ = m.role_get(role, "azure_openai_api_version")
            out = {
                "backend": "azure",
                "base_url": endpoint,
                "api_version": version or DEFAULT_AZURE_API_VERSION,
                "api_key_env": "AZURE_OPENAI_API_KEY",
            }
            if mode_l in _AAD_MODES:
                aad.setdefault(f"{mode_key}: {mode!r}", []).append(role)
            elif mode_l not in (None, "api_key", "key"):
                raise ConfigError(
                    f"{mode_key}: unknown auth mode {mode!r} (skillopt supports api_key, and "
                    "openai_compatible for a plain OpenAI-compatible endpoint)"
                )
        else:
            raise ConfigError(
                f"{source}: {written!r} needs an Azure OpenAI endpoint: set "
                f"model.azure_openai_endpoint (or model.{role}_azure_openai_endpoint); skillopt "
                "does not read it from AZURE_OPENAI_ENDPOINT. For api.openai.com set "
                f"model.{role}_backend: openai"
            )
    elif backend in ("openai", "openai_compatible"):
        base_url, _ = m.role_get(role, "openai_compatible_base_url")
        out = {"backend": "openai", "base_url": base_url}
        if base_url is None:  # the official endpoint needs a key
            official = backend == "openai"
            out["api_key_env"] = "OPENAI_API_KEY" if official else "OPENAI_COMPATIBLE_API_KEY"
        if name is None:
            name, _ = m.role_get(role, "openai_compatible_model")
        out |= m.sampling(role, "openai_compatible")
        send_effort = backend == "openai"
    elif backend == "qwen_chat":
        base_url, _ = m.role_get(role, "qwen_chat_base_url")
        if base_url is None:
            raise ConfigError(
                f"{source}: qwen_chat needs model.qwen_chat_base_url (or "
                f"model.{role}_qwen_chat_base_url): the server's OpenAI-compatible URL"
            )
        out = {"backend": "openai", "base_url": base_url, **m.sampling(role, "qwen_chat")}
        send_effort = False
        thinking, thinking_key = m.role_get(role, "qwen_chat_enable_thinking")
        if thinking is not None:
            notes.warn(
                f"{thinking_key}: chat-template switches are not sent by skillopt's openai "
                "backend; ignored"
            )
    elif backend in ("claude_chat", "anthropic"):
        out = {"backend": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"}
        if backend == "claude_chat":
            notes.warn(
                f"{source}: claude_chat (the claude CLI) runs through the Anthropic Messages "
                "API here, with the key from ANTHROPIC_API_KEY"
            )
        if name is None or name in _OPENAI_SENTINELS:
            raise ConfigError(
                f"model.{role}: name a Claude model for the {role} (got {name!r}; the "
                "reference silently replaced its OpenAI default by a Claude model)"
            )
    else:
        raise ConfigError(f"{source}: backend {written!r} is not supported (use {SUPPORTED})")
    if out["backend"] != "offline":
        if name is None:
            raise ConfigError(f"model.{role}: name the {role} model (the deployment on Azure)")
        out["model"] = name
    effort = m.get("reasoning_effort")
    if effort is not None:
        if send_effort:
            out["reasoning_effort"] = effort
        else:
            notes.warn(
                f"model.reasoning_effort: not sent to the {role} ({backend} backend), as in "
                "the reference"
            )
    return {k: v for k, v in out.items() if v is not None}


def _map_model(model: Any, notes: _Notes) -> dict[str, Any]:
    """The reference's `model` section as our `models.target` / `models.optimizer`."""
    if not isinstance(model, dict):
        raise ConfigError("model: expected a section (the reference's model settings)")
    for key in model:
        if key not in MODEL_KEYS:
            raise ConfigError(f"model.{key}: unknown key")
    m = _ModelSection(model)
    aad: dict[str, list[str]] = {}
    roles = {role: _map_role(m, role, notes, aad) for role in ("target", "optimizer")}
    for where, affected in aad.items():
        names = " and ".join(f"models.{r}" for r in affected)
        verb = "authenticates" if len(affected) == 1 else "authenticate"
        notes.warn(
            f"{where} (Azure AD sign-in) is not supported: {names} {verb} with an API key "
            "read from the environment variable AZURE_OPENAI_API_KEY (api_key_env)"
        )
    backends = ", ".join(sorted({r["backend"] for r in roles.values()}))
    for key, value in model.items():
        if key not in m.used:
            notes.dropped(
                f"model.{key}", value, f"not used by the backends this config maps to ({backends})"
            )
    return roles


def _map_env(env: dict[str, Any], notes: _Notes) -> dict[str, Any]:
    env = dict(env)
    for key in ("name", "skill_init", "split_dir", "data_path"):
        if env.get(key) == "":  # the reference writes "" for unset
            env.pop(key)
    ratio = env.get("split_ratio")
    if isinstance(ratio, list | tuple):
        env["split_ratio"] = ":".join(str(part) for part in ratio)
    elif isinstance(ratio, int) and not isinstance(ratio, bool):
        raise ConfigError(
            'env.split_ratio: quote it, e.g. "2:1:7" (YAML reads 2:1:7 unquoted as a number)'
        )
    mode = env.pop("split_mode", None)
    mode_l = str(mode).strip().lower() if mode not in (None, "") else None
    if mode_l not in (None, "ratio", "split_dir"):
        raise ConfigError(f"env.split_mode: {mode!r} is neither ratio nor split_dir")
    if mode_l == "split_dir":
        if env.get("split_dir") is None:
            raise ConfigError("env.split_mode is split_dir but env.split_dir is empty")
        if env.get("data_path") is not None:
            env.pop("data_path")
            notes.warn("env.data_path: ignored because env.split_mode is split_dir")
    elif mode_l == "ratio" and env.get("split_dir") is not None:
        if env.get("data_path") is None:
            raise ConfigError(
                "env.split_mode is ratio but only env.split_dir is set: set env.split_mode: "
                "split_dir, or give env.data_path"
            )
        env.pop("split_dir")
        notes.warn("env.split_dir: ignored because env.split_mode is ratio (env.data_path is used)")
    for key in ("out_root", "split_output_dir"):
        if key in env:
            notes.dropped(
                f"env.{key}",
                env.pop(key),
                "skillopt keeps everything in the ledger (--db); `skillopt export` writes files",
            )
    if "limit" in env:
        limit = env.pop("limit")
        if limit not in (None, 0, ""):
            raise ConfigError(
                "env.limit: cutting every split is not supported; use evaluation.sel_env_num, "
                "evaluation.test_env_num, or a smaller data file"
            )
        notes.dropped("env.limit", limit, "", quiet=True)
    return env


def to_skillopt(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The merged config (after `_base_` and `--set`) in our schema, and the warnings."""
    data, secrets = redact(data)
    notes = _Notes()
    for path in secrets:
        if path.startswith("model."):
            notes.warn(
                f"{path}: API keys are read from environment variables only (named in "
                "models.<role>.api_key_env); the value is not recorded"
            )
        elif not path.startswith("models."):  # a key under models is refused by validation
            notes.warn(
                f"{path}: a secret-looking value is never recorded (replaced by {REDACTED}); "
                "pass secrets through environment variables"
            )
    if "model" in data:
        roles = _map_model(data.pop("model"), notes)
        ours = data.get("models")
        data["models"] = deep_merge(roles, ours) if isinstance(ours, dict) else ours or roles

    feedback = data.pop("human_feedback", None)
    if isinstance(feedback, dict) and feedback.get("enabled"):
        raise ConfigError(
            "human_feedback.enabled: a human review gate is not supported (the gate decides "
            "from selection scores; `skillopt why` shows the evidence)"
        )
    for key, value in (feedback or {}).items() if isinstance(feedback, dict) else []:
        notes.dropped(f"human_feedback.{key}", value, "", quiet=True)

    for section, key in (
        ("train", "steps_per_epoch"),  # derived from the data, as in the reference
        ("gradient", "max_analyst_rounds"),  # retired in the reference
        ("optimizer", "meta_learning_rate"),  # never read by the reference
        ("optimizer", "use_meta_reflect"),  # never read by the reference
    ):
        if isinstance(data.get(section), dict) and key in data[section]:
            notes.dropped(f"{section}.{key}", data[section].pop(key), "", quiet=True)

    # evaluation.use_semantic_density, semantic_density_weight and leading_words are ours too
    # (the gate's density bonus); optimizer.lr_scheduler: autonomous is the reference's
    # scheduler of 999 edits a step, no optimizer call.

    if isinstance(data.get("env"), dict):
        data["env"] = _map_env(data["env"], notes)
    return data, notes.result()
