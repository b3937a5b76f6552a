"""`mingpian prune`: the delivery store's records past their retention dropped now (PostgreSQL:
a day's partition; SQLite: the day deleted in small batches) and the next days' partitions
made, as every server worker does hourly (delivery/retention.py). Safe beside running workers
and another `prune`: each change waits for the table's lock and finds done what another did.
"""

from __future__ import annotations

import asyncio
import sys
import time

from delivery.open_store import open_store
from delivery.retention import TABLES, Pruned, Retention, days_of

from .api.delivery import delivery_config
from .settings import Settings


async def prune(settings: Settings, now: float | None = None) -> tuple[Retention, list[Pruned]]:
    """One round of the retention on this deployment's delivery store."""
    config = delivery_config(settings)
    store = open_store(settings.database_url, config.database, config.synchronous)
    await store.start()
    try:
        retention = Retention(store.db, days_of(config))  # type: ignore[attr-defined]
        return retention, await retention.maintain(now)
    finally:
        await store.stop()


# What each table holds, as a person reads it (the table's name follows, for the database).
NAMES = {
    "message_ids": "短信中心消息编号",
    "receipts": "回执",
    "calls": "来电事件",
    "attempts": "投递尝试",
    "deliveries": "投递",
    "charges": "扣费记录",
    "taps": "按钮点击",
    "delivery_events": "投递事件明细",
}


def report(retention: Retention, pruned: list[Pruned], now: float) -> str:
    """What was dropped, then how long each table is kept (Chinese, for a person)."""
    lines = []
    for p in pruned:
        where = "默认分区中过期的" if p.day == "default" else f"{p.day} 的"
        lines.append(f"已删除{NAMES[p.table]}（{p.table}）{where}记录：{p.rows:,} 行")
    if not pruned:
        lines.append("没有超过保留期的记录。")
    lines.append("保留期：")
    for table in TABLES:
        since = retention.kept_since(table, now)
        lines.append(f"  {NAMES[table]}（{table}）：{retention.days[table]} 天（保留 {since} 及以后的记录）")
    return "\n".join(lines) + "\n"


def run(settings: Settings) -> int:
    now = time.time()
    retention, pruned = asyncio.run(prune(settings, now))
    sys.stdout.write(report(retention, pruned, now))
    return 0
