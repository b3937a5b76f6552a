"""Packages and pools an enterprise buys, which of them pay for a message, and what a charge is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the store imports metering's ledger: no import cycle at run time
    from ..storage import DocumentStore


DEFAULT_UNITS = {"rcs": 1, "ussd": 1, "flash": 1, "sms": 1, "cardsms": 1}  # SMS: per segment


@dataclass(frozen=True, slots=True)
class Package:
    id: str
    enterprise: str
    units: int
    policy: str  # stop | overage
    unit_price: float  # package price / units: what a unit inside the package costs
    overage_price: float

    @classmethod
    def from_json(cls, enterprise: str, d: dict[str, Any]) -> Package:
        units = int(d["units"])
        return cls(
            d["id"],
            enterprise,
            units,
            d.get("policy", "stop"),
            float(d.get("price", 0.0)) / units if units else 0.0,
            float(d.get("overage_price", 0.0)),
        )

    @property
    def key(self) -> str:
        """The package's counter name, unique across enterprises."""
        return f"{self.enterprise}/{self.id}"


@dataclass(frozen=True, slots=True)
class Charge:
    ok: bool
    package: str | None = None
    units: int = 0
    overage: int = 0
    cost: float = 0.0
    reason: str = ""
    repeated: bool = False


def refused(packages: list[Package]) -> Charge:
    return Charge(False, reason="package used up" if packages else "no valid package for this line")


async def applicable(
    store: DocumentStore, enterprise: str, line: str, now: float
) -> tuple[list[Package], bool]:
    """The packages that may pay for a message from `line`, in spending order (the line's own
    packages, then pools), and whether the enterprise is metered at all (has any package)."""
    docs = await store.list("package", enterprise)
    valid = [
        d
        for d in docs
        if d["valid_from"] <= now < d["valid_to"] and (not d.get("lines") or line in d["lines"])
    ]
    valid.sort(key=lambda d: (d.get("kind", "pool") != "line", d["valid_to"], d["id"]))
    return [Package.from_json(enterprise, d) for d in valid], bool(docs)


def units_for(package_doc: dict[str, Any] | None, channel: str, segments: int) -> int:
    per = (package_doc or {}).get("unit_cost", {}).get(channel, DEFAULT_UNITS.get(channel, 1))
    return per * (segments if channel in ("sms", "flash") else 1)
