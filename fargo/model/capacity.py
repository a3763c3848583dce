"""Capacity provider strategies: ECS's rules for them and which provider a task goes to.

fargo has the two Fargate capacity providers, FARGATE and FARGATE_SPOT; both run tasks on
this host, and a FARGATE_SPOT task can be interrupted (control/spot.py).

What other modules use:

- `StrategyItem(provider, base=0, weight=0)`: one item of a strategy; `Strategy` is a tuple
  of them, in the order the user gave them.
- `parse_strategy(items, field)`: a strategy from the wire's list of
  {capacityProvider, base, weight}, checked; `check_strategy(strategy, field)` checks one
  built in code. Both raise InvalidParameterException naming the field.
- `check_associated(strategy, providers)`: every provider of the strategy is associated with
  the cluster (its `capacityProviders`), as RunTask and CreateService require.
- `choose_provider(strategy, counts) -> str`: the provider the next task goes to, given how
  many tasks each provider already has (for a service: its tasks; for one RunTask: the tasks
  that call placed so far). `base` is filled first, then the rest follows the weights;
  deterministic. `choose_to_stop(strategy, counts)` is its mirror for scaling in.
- `SPOT_INTERRUPTION` / `SPOT_REASON`: the stopCode and stoppedReason of an interrupted
  Fargate Spot task.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .errors import InvalidParameterException

FARGATE, FARGATE_SPOT = "FARGATE", "FARGATE_SPOT"
PROVIDERS = (FARGATE, FARGATE_SPOT)
MAX_BASE = 100_000
MAX_WEIGHT = 1_000
MAX_ITEMS = 20  # botocore's ECS model: "a maximum of 20 capacity providers"

SPOT_INTERRUPTION = "SpotInterruption"
SPOT_REASON = "Your Spot Task was interrupted."

NOT_ASSOCIATED = (
    "The specified capacity provider strategy cannot contain a capacity provider that is not "
    "associated with the cluster. Associate the capacity provider with the cluster or specify "
    "a valid capacity provider and try again.")


@dataclass(frozen=True)
class StrategyItem:
    provider: str
    base: int = 0
    weight: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {"capacityProvider": self.provider, "weight": self.weight, "base": self.base}


Strategy = tuple[StrategyItem, ...]


def _invalid(message: str) -> InvalidParameterException:
    return InvalidParameterException(message)


def check_provider(name: object, field: str) -> str:
    """A capacity provider's name: FARGATE or FARGATE_SPOT, the only ones fargo has."""
    if name not in PROVIDERS:
        shown = str(name)[:255] if isinstance(name, str) else type(name).__name__
        raise _invalid(f"The specified capacity provider {shown!r} in {field} does not exist: "
                       "fargo has the capacity providers FARGATE and FARGATE_SPOT.")
    return str(name)


def check_providers(names: Iterable[object], field: str = "capacityProviders") -> tuple[str, ...]:
    """A cluster's capacityProviders list: known names, each once."""
    out: list[str] = []
    for name in names:
        provider = check_provider(name, field)
        if provider in out:
            raise _invalid(f"{field} names the capacity provider {provider} more than once.")
        out.append(provider)
    return tuple(out)


def _integer(value: object, field: str, top: int) -> int:
    # bool is an int in Python; the wire's JSON true is no count.
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(f"{field} must be a whole number.")
    if not 0 <= value <= top:
        raise _invalid(f"{field} must be between 0 and {top}; {value} was given.")
    return value


def check_strategy(strategy: Strategy, field: str = "capacityProviderStrategy") -> Strategy:
    """ECS's rules for a strategy: known providers, each once; base 0-100000 on at most one
    item; weight 0-1000, and when there are several items at least one weight above 0."""
    if len(strategy) > MAX_ITEMS:
        raise _invalid(f"{field} can contain at most {MAX_ITEMS} capacity providers.")
    seen: set[str] = set()
    for i, item in enumerate(strategy):
        where = f"{field}[{i}]"
        check_provider(item.provider, f"{where}.capacityProvider")
        if item.provider in seen:
            raise _invalid(f"{field} names the capacity provider {item.provider} more than "
                           "once; each capacity provider can appear in a strategy once.")
        seen.add(item.provider)
        _integer(item.base, f"{where}.base", MAX_BASE)
        _integer(item.weight, f"{where}.weight", MAX_WEIGHT)
    if sum(1 for item in strategy if item.base > 0) > 1:
        raise _invalid(f"Only one capacity provider in {field} can have a base greater "
                       "than 0.")
    if len(strategy) > 1 and not any(item.weight > 0 for item in strategy):
        raise _invalid(f"At least one capacity provider in {field} must have a weight "
                       "greater than 0: a provider of weight 0 is given no tasks.")
    return strategy


def parse_strategy(items: list[Any] | None,
                   field: str = "capacityProviderStrategy") -> Strategy:
    """The wire's strategy (already of botocore's shape), checked; [] or None: empty."""
    out: list[StrategyItem] = []
    for i, given in enumerate(items or []):
        if not isinstance(given, dict):
            raise _invalid(f"{field}[{i}] must be an object.")
        unknown = sorted(set(given) - {"capacityProvider", "base", "weight"})
        if unknown:
            raise _invalid(f"{field}[{i}].{str(unknown[0])[:64]} is not a member of a "
                           "capacity provider strategy item.")
        base = given.get("base")
        weight = given.get("weight")
        out.append(StrategyItem(provider=given.get("capacityProvider"),  # type: ignore[arg-type]
                                base=0 if base is None else base,
                                weight=0 if weight is None else weight))
    return check_strategy(tuple(out), field)


def strategy_from_wire(items: list[dict[str, Any]] | None) -> Strategy:
    """A strategy as fargo stored it (a cluster's default): trusted, not checked again."""
    return tuple(StrategyItem(i["capacityProvider"], int(i.get("base") or 0),
                              int(i.get("weight") or 0)) for i in items or [])


def check_associated(strategy: Strategy, providers: Iterable[str]) -> None:
    associated = set(providers)
    if any(item.provider not in associated for item in strategy):
        raise _invalid(NOT_ASSOCIATED)


def _over_base(item: StrategyItem, counts: Mapping[str, int]) -> int:
    return max(0, counts.get(item.provider, 0) - item.base)


def choose_provider(strategy: Strategy, counts: Mapping[str, int]) -> str:
    """The provider of the next task. The item with a base gets tasks until it has `base`;
    after that each task goes where it keeps the tasks above base closest to the weights'
    ratio: the item whose (tasks above base + 1) / weight is smallest, the larger weight and
    then the earlier item winning a tie (so 1:4 places B, B, B, B, A, ...). A lone item of
    weight 0 takes every task."""
    if not strategy:
        raise ValueError("an empty capacity provider strategy chooses nothing")
    for item in strategy:
        if item.base > 0 and counts.get(item.provider, 0) < item.base:
            return item.provider
    weighted = [(i, item) for i, item in enumerate(strategy) if item.weight > 0]
    if not weighted:
        return strategy[0].provider
    _, best = min(weighted, key=lambda e: (Fraction(_over_base(e[1], counts) + 1, e[1].weight),
                                           -e[1].weight, e[0]))
    return best.provider


def choose_to_stop(strategy: Strategy, counts: Mapping[str, int]) -> str | None:
    """The provider to take a task from when scaling in: first one the strategy no longer
    names, then one of weight 0 above its base, then the weighted one most above its share
    (the largest tasks above base / weight; the smaller weight, then the later item wins a
    tie), and only then the base item. None: no provider has a task."""
    named = {item.provider for item in strategy}
    for provider in sorted(counts):
        if counts[provider] > 0 and provider not in named:
            return provider
    for item in strategy:
        if item.weight == 0 and _over_base(item, counts) > 0:
            return item.provider
    weighted = [(i, item) for i, item in enumerate(strategy)
                if item.weight > 0 and _over_base(item, counts) > 0]
    if weighted:
        _, worst = max(weighted, key=lambda e: (Fraction(_over_base(e[1], counts), e[1].weight),
                                                -e[1].weight, e[0]))
        return worst.provider
    for item in strategy:
        if counts.get(item.provider, 0) > 0:
            return item.provider
    return None


def spread(strategy: Strategy, count: int, counts: Mapping[str, int] | None = None) -> list[str]:
    """The providers of `count` more tasks, one by one as choose_provider places them."""
    have = dict(counts or {})
    out = []
    for _ in range(count):
        provider = choose_provider(strategy, have)
        have[provider] = have.get(provider, 0) + 1
        out.append(provider)
    return out
