"""Capacity provider strategies: ECS's rules and where each task goes (no server)."""

from __future__ import annotations

from collections import Counter

import pytest

from fargo.model.capacity import (
    StrategyItem,
    check_associated,
    check_providers,
    check_strategy,
    choose_provider,
    choose_to_stop,
    parse_strategy,
    spread,
)
from fargo.model.errors import InvalidParameterException
from fargo.model.task import check_launch

pytestmark = pytest.mark.pure

F, S = "FARGATE", "FARGATE_SPOT"


def items(*given: tuple[str, int, int]) -> tuple[StrategyItem, ...]:
    return tuple(StrategyItem(p, b, w) for p, b, w in given)


def refused(call, *args) -> str:
    with pytest.raises(InvalidParameterException) as exc:
        call(*args)
    return exc.value.message


def test_parse_fills_defaults_and_renders():
    s = parse_strategy([{"capacityProvider": S}, {"capacityProvider": F, "base": 2, "weight": 1}])
    assert s == (StrategyItem(S, 0, 0), StrategyItem(F, 2, 1))
    assert s[1].to_wire() == {"capacityProvider": F, "weight": 1, "base": 2}
    assert parse_strategy(None) == () and parse_strategy([]) == ()


@pytest.mark.parametrize("given,needle", [
    ([{"capacityProvider": "EC2_ASG"}], "'EC2_ASG'"),
    ([{"capacityProvider": "fargate"}], "'fargate'"),
    ([{"capacityProvider": F, "weight": 1}, {"capacityProvider": F, "weight": 2}],
     "more than once"),
    ([{"capacityProvider": F, "base": 1, "weight": 1}, {"capacityProvider": S, "base": 1}],
     "Only one capacity provider"),
    ([{"capacityProvider": F}, {"capacityProvider": S}], "weight greater than 0"),
    ([{"capacityProvider": F, "weight": 1001}], "capacityProviderStrategy[0].weight"),
    ([{"capacityProvider": F, "base": 100001}], "between 0 and 100000"),
    ([{"capacityProvider": F, "weight": -1}], "weight"),
    ([{"capacityProvider": F, "weight": True}], "whole number"),
    ([{"capacityProvider": F, "colour": "red"}], "colour"),
    (["FARGATE"], "must be an object"),
])
def test_parse_refuses_what_ecs_refuses(given, needle):
    assert needle in refused(parse_strategy, given)


def test_limits_and_field_name():
    assert "defaultCapacityProviderStrategy[0]" in refused(
        parse_strategy, [{"capacityProvider": "X"}], "defaultCapacityProviderStrategy")
    assert parse_strategy([{"capacityProvider": F, "base": 100000, "weight": 1000}])
    # A lone item of weight 0 is a valid strategy: every task goes to it.
    assert check_strategy(items((S, 0, 0))) == items((S, 0, 0))
    assert "at most 20" in refused(check_strategy, items(*[(F, 0, 1)] * 21))


def test_providers_and_association():
    assert check_providers([F, S]) == (F, S)
    assert "more than once" in refused(check_providers, [F, F])
    assert "'X'" in refused(check_providers, [F, "X"])
    check_associated(items((S, 0, 1)), [F, S])
    assert "not associated" in refused(check_associated, items((S, 0, 1)), [F])


def test_base_first_then_weights():
    s = items((F, 2, 1), (S, 0, 3))
    assert spread(s, 2) == [F, F]
    got = spread(s, 10)
    assert Counter(got) == {F: 4, S: 6}  # 2 base, then 8 split 1:3 -> 2 and 6
    assert spread(s, 1, {F: 2, S: 0}) == [S]


def test_weight_ratio_is_kept_at_every_step():
    s = items((F, 0, 1), (S, 0, 4))
    seq = spread(s, 10)
    assert seq[:5] == [S, S, S, S, F]  # the heavier provider first on a tie
    assert Counter(seq) == {F: 2, S: 8}
    for n in range(1, 60):
        c = Counter(spread(s, n))
        assert abs(c[S] - 4 * c[F]) <= 4, (n, c)


def test_deterministic_and_equal_weights_alternate():
    s = items((S, 0, 1), (F, 0, 1))
    assert spread(s, 4) == [S, F, S, F]
    assert spread(s, 4) == spread(s, 4)


def test_weight_zero_items_take_only_their_base():
    s = items((F, 1, 0), (S, 0, 1))
    assert spread(s, 4) == [F, S, S, S]
    assert spread(items((S, 0, 0)), 3) == [S, S, S]
    assert choose_provider(items((F, 0, 0)), {F: 7}) == F
    with pytest.raises(ValueError):
        choose_provider((), {})


def test_counts_of_other_providers_are_ignored():
    assert choose_provider(items((S, 0, 1)), {F: 5}) == S


def test_choose_to_stop_mirrors_placement():
    s = items((F, 1, 1), (S, 0, 3))
    assert choose_to_stop(s, {}) is None
    assert choose_to_stop(s, {"OTHER": 1, F: 3}) == "OTHER"
    assert choose_to_stop(s, {F: 3, S: 3}) == F  # F is 2 above base for weight 1
    assert choose_to_stop(s, {F: 1, S: 2}) == S
    assert choose_to_stop(s, {F: 1}) == F  # only the base is left
    assert choose_to_stop(items((F, 0, 0), (S, 0, 1)), {F: 1, S: 5}) == F
    # Scaling in from a spread and out again lands on the same split.
    have = Counter(spread(s, 9))
    for _ in range(4):
        have[choose_to_stop(s, have)] -= 1
    assert have == Counter(spread(s, 5))


def test_run_task_launch_rules():
    assert check_launch("FARGATE", None) is None
    assert check_launch(None, items((S, 0, 1))) is None
    assert check_launch(None, None) is None
    assert "both a launch type" in refused(check_launch, "FARGATE", items((F, 0, 1)))
    assert "EC2" in refused(check_launch, "EC2", None)
