"""The project's card templates, and small helpers for tests that build throw-away templates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mingpian.settings import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "card_templates"

MANIFEST = """\
name: {name}
title: 测试模板
description: 测试用模板
phase: hang-up
brand:
  signature: 测试签名
  name: 测试企业
"""


def write_template(
    root: Path,
    name: str,
    card: str,
    schema: dict[str, Any] | None = None,
    sample: dict[str, Any] | None = None,
    manifest: str | None = None,
) -> Path:
    """Create card_templates/<name>/ with the given card.yaml and a permissive schema."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.yaml").write_text(manifest or MANIFEST.format(name=name), "utf-8")
    (folder / "schema.json").write_text(json.dumps(schema or {"type": "object"}), "utf-8")
    (folder / "sample.json").write_text(json.dumps(sample or {}, ensure_ascii=False), "utf-8")
    (folder / "card.yaml").write_text(card, "utf-8")
    return folder
