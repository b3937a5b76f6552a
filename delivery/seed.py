"""A YAML seed of enterprises, keys, lines, staff, cards and packages, loaded at start: how a
deployment (or a demo) comes up with its configuration in place.

What the seed names is written at every start, as the operator's configuration. A card is a new
version, approved as made (reviews.py), only where the version sent differs from the seed's: an
unchanged seed leaves a card's history, and an enterprise's waiting edit, as they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from renderer.jsonpath import json_path

from . import keys, reviews
from .brand import with_approval
from .errors import SeedError
from .model import SCHEMAS, normalize_number
from .replies import bot_id
from .storage import DeliveryStore

# seed list name → (stored kind, id field), in the order they are loaded
SECTIONS = (
    ("staff", "staff", "id"),
    ("lines", "line", "number"),
    ("cards", "card", "id"),
    ("packages", "package", "id"),
)


async def load_seed(store: DeliveryStore, path: Path) -> None:
    try:
        doc = yaml.safe_load(path.read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SeedError(f"{path}: cannot read the delivery seed: {exc}") from None
    async with store.tx():
        for key in doc.get("operator_keys", []):
            await store.add_key(keys.hash_key(str(key)), None, f"seed {path.name}")
        for i, e in enumerate(doc.get("enterprises", [])):
            e = dict(e)
            sub = {name: e.pop(name, []) for name, _, _ in SECTIONS}
            issued = e.pop("keys", [])
            _check("enterprise", e, f"{path}: enterprises[{i}]")
            e = with_approval(e, e.get("sms_sender"))  # the operator's configuration: approved
            await store.put("enterprise", "", e["id"], e)
            if not await store.claim_chatbot(e["id"], bot_id(e.get("chatbot", ""))):
                raise SeedError(f"{path}: enterprises[{i}].chatbot: belongs to another enterprise")
            for key in issued:
                await store.add_key(keys.hash_key(str(key)), e["id"], f"seed {path.name}")
            for name, kind, idf in SECTIONS:
                for j, item in enumerate(sub[name]):
                    item = dict(item)
                    verified = bool(item.pop("verified", False)) if kind == "line" else False
                    _check(kind, item, f"{path}: enterprises[{i}].{name}[{j}]")
                    if kind == "line":
                        item = {**item, "number": normalize_number(item["number"]), "verified": verified}
                    if kind == "card" and item.get("line"):
                        item["line"] = normalize_number(item["line"])
                    if kind == "package":
                        item["lines"] = [normalize_number(n) for n in item.get("lines", [])]
                    if kind == "card":  # the operator's card: a version approved as it is made,
                        sent = await store.get("card", e["id"], item["id"])  # when it is not sent yet
                        if not reviews.same(sent, item):
                            await reviews.submit(store, e, item, f"seed {path.name}", by_operator=True)
                    else:
                        await store.put(kind, e["id"], item[idf], item)


_VALIDATORS: dict[str, Draft202012Validator] = {}


def _check(kind: str, body: Any, where: str) -> None:
    validator = _VALIDATORS.get(kind) or _VALIDATORS.setdefault(kind, Draft202012Validator(SCHEMAS[kind]))
    err = next(iter(validator.iter_errors(body)), None)
    if err is not None:
        raise SeedError(f"{where}{json_path(err.absolute_path)[1:]}: {err.message}")
