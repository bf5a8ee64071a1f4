"""The reducer's cheap immutable values (machine/core/values.py) behave as the plain ones they
replace: `replace` as dataclasses.replace, `make` as the constructor, PMap as a dict that
never changes once built."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from skillopt.machine.core.state import ItemScore, TrainerState
from skillopt.machine.core.values import PMap, make, replace


def test_replace_equals_dataclasses_replace() -> None:
    state = TrainerState(run_name="r", seq=3, tokens={"reflect": (1, 2, 3, 4)})
    for changes in ({"seq": 4}, {"seq": 5, "best_score": 0.5, "current_origin": "step 1"}, {}):
        ours, theirs = replace(state, **changes), dataclasses.replace(state, **changes)
        assert ours == theirs and type(ours) is TrainerState
        assert ours is not state and state.seq == 3  # the original never changes
    with pytest.raises(dataclasses.FrozenInstanceError):
        replace(state, seq=9).seq = 10  # type: ignore[misc]
    with pytest.raises(TypeError, match="unexpected keyword argument 'no_such_field'"):
        replace(state, no_such_field=1)


def test_replace_keeps_post_init_semantics() -> None:
    @dataclass(frozen=True)
    class Checked:
        n: int
        twice: int = field(init=False, default=0)

        def __post_init__(self) -> None:
            object.__setattr__(self, "twice", 2 * self.n)

    assert replace(Checked(1), n=4).twice == 8  # not a plain dataclass: the real replace


def test_make_equals_the_constructor() -> None:
    args = ("i1", 1.0, 0.5, "", "date", "h" * 64, {"x": 1}, 7)
    assert make(ItemScore, *args) == ItemScore(*args)  # the default of tokens filled in
    assert make(ItemScore, *args, (3, 4)) == ItemScore(*args, (3, 4))
    with pytest.raises(TypeError):
        make(ItemScore, "too few")


def test_pmap_is_a_persistent_mapping() -> None:
    empty: PMap[tuple[str, int, str], int] = PMap()
    keys = [("train", i, "") for i in range(300)] + [("selection", 0, f"h{i}") for i in range(50)]
    versions = [empty]
    for i, key in enumerate(keys):
        versions.append(versions[-1].set(key, i))
    last = versions[-1]
    assert len(last) == 350 and len(versions[100]) == 100 and len(empty) == 0
    assert last[("train", 5, "")] == 5 and versions[3].get(("train", 5, "")) is None
    assert ("selection", 0, "h3") in last and ("selection", 0, "h3") not in versions[300]
    assert last == dict(zip(keys, range(350), strict=True))  # equal to the dict it stands for
    assert list(last) == sorted(keys)  # iteration never depends on the hash seed
    again = last.set(("train", 5, ""), 99)
    assert again[("train", 5, "")] == 99 and last[("train", 5, "")] == 5 and len(again) == 350
    assert PMap({"a": 1}) == {"a": 1} and PMap({"a": 1}) != {"a": 2}
    with pytest.raises(KeyError):
        empty[("train", 1, "")]
