"""Names to adapters: the built-ins plus anything registered through Python entry points."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from skillopt.adapters.protocol import (
    AdapterError,
    ChatModel,
    DataSource,
    Environment,
    RoleSettings,
)

MODEL_GROUP = "skillopt.models"
ENV_GROUP = "skillopt.environments"


REMOTE_BACKENDS = ("anthropic", "openai", "azure")


def _builtin_models() -> dict[str, Callable[..., ChatModel]]:
    from skillopt.adapters.models.offline import OfflineModel

    return {"offline": OfflineModel, **{name: _remote(name) for name in REMOTE_BACKENDS}}


def _remote(backend: str) -> Callable[..., ChatModel]:
    def build(settings: RoleSettings) -> ChatModel:
        if backend == "anthropic":
            from skillopt.adapters.models.anthropic_model import AnthropicModel

            return AnthropicModel(settings)
        from skillopt.adapters.models.openai_model import OpenAIModel

        return OpenAIModel(settings)

    return build


def _builtin_envs() -> dict[str, Callable[..., Environment]]:
    from skillopt.adapters.environments.closed_loop import ClosedLoopEnvironment
    from skillopt.adapters.environments.qa import QAEnvironment
    from skillopt.adapters.environments.sim import SimEnvironment
    from skillopt.adapters.environments.task import TaskEnvironment

    return {
        "sim": SimEnvironment,
        "qa": QAEnvironment,
        "closed_loop": ClosedLoopEnvironment,
        "task": TaskEnvironment,
    }


def _plugins(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def model_names() -> list[str]:
    return sorted({*_builtin_models(), *_plugins(MODEL_GROUP)})


def env_names() -> list[str]:
    return sorted({*_builtin_envs(), *_plugins(ENV_GROUP)})


def make_model(settings: RoleSettings) -> ChatModel:
    """The offline model and plugins take (role, model, options); provider backends take the
    whole RoleSettings."""
    backend, role = settings.backend, settings.role
    if backend in REMOTE_BACKENDS:
        return _remote(backend)(settings)
    factory = _builtin_models().get(backend)
    if factory is None and backend in _plugins(MODEL_GROUP):
        factory = _plugins(MODEL_GROUP)[backend].load()
    if factory is None:
        raise AdapterError(
            f"models.{role}.backend: unknown model backend {backend!r} "
            f"(known: {', '.join(model_names())})"
        )
    return factory(role, settings.model, settings.options)


def make_environment(
    name: str, options: Mapping[str, Any], source: DataSource | None = None
) -> Environment:
    """Environment factories take (options, source); `source` is None unless the config names
    data files (env.split_dir / env.data_path)."""
    factory = _builtin_envs().get(name)
    if factory is None and name in _plugins(ENV_GROUP):
        factory = _plugins(ENV_GROUP)[name].load()
    if factory is None:
        raise AdapterError(
            f"env.name: unknown environment {name!r} (known: {', '.join(env_names())})"
        )
    return factory(options, source)
