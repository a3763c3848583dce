"""Fargate's bill (FARGATE.md section 8): per second with a one-minute minimum, from the
start of the image pull until the task or pod stops, for the provisioned vCPU and GB (a pod's
CapacityProvisioned), ephemeral storage above the free 20 GB, Fargate Spot at its discount,
Linux/ARM at its own rates. The prices are configuration (`Prices`, overridable by a JSON
file); the usage types and SERVICE names are the ones Cost Explorer shows."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

MINIMUM_SECONDS = 60
FREE_STORAGE_GB = 20
SERVICE_ECS = "Amazon Elastic Container Service"
# EKS's Fargate pods are billed under EKS, with the same Fargate usage types.
SERVICE_EKS = "Amazon Elastic Container Service for Kubernetes"
SERVICE_CODES = {SERVICE_ECS: "AmazonECS", SERVICE_EKS: "AmazonEKS"}
ON_DEMAND, SPOT = "On Demand Instances", "Spot Instances"  # PURCHASE_TYPE's values
UNIT_HOURS, UNIT_GB_HOURS = "Hrs", "GB-Hours"

# The short codes AWS's usage types begin with (AWS Region billing codes); a region not
# listed is written as its own name.
REGION_CODES = {
    "us-east-1": "USE1", "us-east-2": "USE2", "us-west-1": "USW1", "us-west-2": "USW2",
    "ca-central-1": "CAN1", "ca-west-1": "CAN2", "mx-central-1": "MXC1",
    "af-south-1": "AFS1", "ap-east-1": "APE1", "ap-east-2": "APE2",
    "ap-northeast-1": "APN1", "ap-northeast-2": "APN2", "ap-northeast-3": "APN3",
    "ap-southeast-1": "APS1", "ap-southeast-2": "APS2", "ap-south-1": "APS3",
    "ap-southeast-3": "APS4", "ap-south-2": "APS5", "ap-southeast-4": "APS6",
    "ap-southeast-5": "APS7", "ap-southeast-7": "APS9",
    "eu-west-1": "EU", "eu-west-2": "EUW2", "eu-west-3": "EUW3", "eu-central-1": "EUC1",
    "eu-central-2": "EUC2", "eu-north-1": "EUN1", "eu-south-1": "EUS1", "eu-south-2": "EUS2",
    "il-central-1": "ILC1", "me-central-1": "MEC1", "me-south-1": "MES1",
    "sa-east-1": "SAE1", "us-gov-west-1": "UGW1", "us-gov-east-1": "UGE1",
    "cn-north-1": "CNN1", "cn-northwest-1": "CNW1",
}


class PriceError(ValueError):
    """A price table that cannot be used; the message names the member."""


@dataclass(frozen=True)
class Prices:
    """USD per unit-hour. The defaults are us-east-1's on-demand Linux rates; Fargate Spot is
    the on-demand rate less `spot_discount` (AWS: "up to 70% off"; its real price floats, here
    it is this fixed share). Storage is not discounted on Spot: Spot's price list has vCPU and
    memory only."""

    vcpu_hour: float = 0.04048
    gb_hour: float = 0.004445
    arm_vcpu_hour: float = 0.03238
    arm_gb_hour: float = 0.00356
    storage_gb_hour: float = 0.000111
    spot_discount: float = 0.70

    @classmethod
    def from_json(cls, doc: Any) -> Prices:
        """Defaults overridden by a JSON object of camelCase members, e.g.
        {"vcpuHour": 0.05, "spotDiscount": 0.6}; anything else is refused by name."""
        if not isinstance(doc, Mapping):
            raise PriceError("The price file must hold a JSON object.")
        names = {_camel(f.name): f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for key, value in doc.items():
            if key not in names:
                raise PriceError(f"Unknown price {str(key)[:64]!r}; known: "
                                 f"{', '.join(sorted(names))}.")
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value < 0:
                raise PriceError(f"Price {key} must be a number of 0 or more.")
            values[names[key]] = float(value)
        if values.get("spot_discount", 0.0) >= 1.0:
            raise PriceError("spotDiscount is a share below 1 (0.7 is 70% off).")
        return cls(**values)

    def to_json(self) -> dict[str, float]:
        return {_camel(f.name): getattr(self, f.name) for f in fields(self)}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


@dataclass(frozen=True)
class Metered:
    """One task's (or pod's) billable life, as the usage table keeps it after the task
    record is forgotten. `end` None: still running, counted up to the query's now."""

    task_id: str
    region: str
    cluster: str
    group: str  # "service:NAME", "family:NAME" or RunTask's group
    family: str
    cpu: int  # units: 1024 a vCPU
    memory: int  # MiB
    storage_gib: int
    spot: bool
    arm: bool
    start: float  # the image pull's start
    end: float | None
    zone: str = ""
    pod: str | None = None  # "namespace/name" of an EKS pod
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def service(self) -> str:
        return SERVICE_EKS if self.pod else SERVICE_ECS

    @property
    def service_name(self) -> str | None:
        """The ECS service a task ran for, from its group."""
        return self.group.removeprefix("service:") if self.group.startswith("service:") \
            else None


def billed_span(start: float, end: float) -> tuple[float, float]:
    """The seconds billed: whole seconds rounded up, one minute at the least."""
    seconds = max(MINIMUM_SECONDS, math.ceil(max(0.0, end - start) - 1e-9))
    return start, start + seconds


@dataclass(frozen=True)
class LineItem:
    """A usage type one task accrues: `quantity` units (vCPU, GB) for each hour it is billed,
    at `rate` USD per unit-hour."""

    usage_type: str
    quantity: float
    rate: float
    unit: str
    purchase: str


def region_code(region: str) -> str:
    return REGION_CODES.get(region, region)


def usage_type(region: str, resource: str, spot: bool = False, arm: bool = False) -> str:
    """resource: "vCPU", "GB" or "EphemeralStorage"; e.g. USE1-Fargate-vCPU-Hours:perCPU,
    USE1-SpotUsage-Fargate-ARM-GB-Hours, EU-Fargate-EphemeralStorage-GB-Hours."""
    prefix = region_code(region)
    if resource == "EphemeralStorage":
        return f"{prefix}-Fargate-EphemeralStorage-GB-Hours"
    kind = f"{'SpotUsage-' if spot else ''}Fargate-{'ARM-' if arm else ''}"
    return f"{prefix}-{kind}{'vCPU-Hours:perCPU' if resource == 'vCPU' else 'GB-Hours'}"


def line_items(m: Metered, prices: Prices) -> list[LineItem]:
    cpu_rate, mem_rate = ((prices.arm_vcpu_hour, prices.arm_gb_hour) if m.arm
                          else (prices.vcpu_hour, prices.gb_hour))
    keep = 1.0 - prices.spot_discount if m.spot else 1.0
    purchase = SPOT if m.spot else ON_DEMAND
    items = [LineItem(usage_type(m.region, "vCPU", m.spot, m.arm), m.cpu / 1024,
                      cpu_rate * keep, UNIT_HOURS, purchase),
             LineItem(usage_type(m.region, "GB", m.spot, m.arm), m.memory / 1024,
                      mem_rate * keep, UNIT_GB_HOURS, purchase)]
    extra = m.storage_gib - FREE_STORAGE_GB
    if extra > 0:
        items.append(LineItem(usage_type(m.region, "EphemeralStorage"), float(extra),
                              prices.storage_gb_hour, UNIT_GB_HOURS, purchase))
    return items


def overlap(span: tuple[float, float], bucket: tuple[float, float]) -> float:
    """Seconds of `span` within `bucket`: a task's billed time split pro rata."""
    return max(0.0, min(span[1], bucket[1]) - max(span[0], bucket[0]))


@dataclass(frozen=True)
class TaskCharge:
    """One task's bill within a window: what `fargo cost` lists per task."""

    usage: Metered
    seconds: float
    vcpu_hours: float
    gb_hours: float
    storage_gb_hours: float
    cost: float


def charge_within(m: Metered, prices: Prices, window: tuple[float, float],
                  now: float) -> TaskCharge:
    """The task's billed time inside `window`, pro rata (its minimum applied to it whole)."""
    span = billed_span(m.start, m.end if m.end is not None else now)
    seconds = overlap(span, window)
    hours = seconds / 3600
    storage = float(max(0, m.storage_gib - FREE_STORAGE_GB))
    cost = sum(item.quantity * item.rate * hours for item in line_items(m, prices))
    return TaskCharge(m, seconds, m.cpu / 1024 * hours, m.memory / 1024 * hours,
                      storage * hours, cost)
