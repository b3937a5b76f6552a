"""Experiments in their corners, on both stores: starts, stops and promotions racing each other
(one record, one audit entry, the loser a 409), the dry run showing the variant a number gets,
and every kind of bad input answered with the field's JSON path and its title in Chinese."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from mingpian.api.delivery import delivery_key

from .support import OPERATOR, SF_KEY, SF_LINE, AppFactory, Client, auth, call, settle
from .test_experiments import CARD, XS, body, edited, two_versions

SF, OP = auth(SF_KEY), auth(OPERATOR)
CHINESE = re.compile(r"[\u4e00-\u9fff]")


async def audit_actions(client: Client, action: str) -> list[dict[str, Any]]:
    log = (await (await client.get("/api/enterprises/sf/audit", headers=OP)).json())["audit"]
    return [e for e in log if e["action"] == action]


async def at_once(n: int, make: Any) -> list[tuple[int, dict[str, Any]]]:
    """`n` requests sent together (each its own connection and, on PostgreSQL, transaction)."""

    async def one(i: int) -> tuple[int, dict[str, Any]]:
        resp = await make(i)
        return resp.status, await resp.json()

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def refused(got: dict[str, Any], status: int, status_want: int, path: str, title: str) -> None:
    """A clear refusal: the status, the field's JSON path and title, a Chinese sentence naming
    both."""
    assert status == status_want, got
    problem = got["problems"][0]
    assert problem["path"] == path, got
    assert problem["title"] == title, got
    assert f"「{title}」" in problem["message"] and CHINESE.search(problem["message"]), got
    assert path in got["message"], got


async def test_simultaneous_starts_make_one_experiment(make_app: AppFactory) -> None:
    client = await make_app()
    await two_versions(client)
    # on PostgreSQL half the starts go to a second server process of the fleet (SQLite has one)
    other = await make_app() if client.app[delivery_key].store.shared else client
    answers = await at_once(4, lambda i: (client, other)[i % 2].post(XS, json=body(), headers=SF))
    assert sorted(s for s, _ in answers) == [201, 409, 409, 409], answers
    for status, got in answers:
        if status == 409:
            refused(got, status, 409, "$", "实验")
            assert got["error"] == "conflict"
    listed = (await (await client.get(XS, headers=SF)).json())["experiments"]
    assert len(listed) == 1 and listed[0]["state"] == "running"
    [won] = [got for s, got in answers if s == 201]
    assert listed[0]["id"] == won["id"]
    assert len(await audit_actions(client, "start experiment")) == 1
    store = client.app[delivery_key].store
    assert (await store.get("experiment_running", "sf", "hangup"))["id"] == won["id"]


async def test_simultaneous_promotions_and_stops_end_it_once(make_app: AppFactory) -> None:
    client = await make_app()
    await two_versions(client)
    x = await (await client.post(XS, json=body(), headers=SF)).json()
    item = f"{XS}/{x['id']}"

    def end(i: int, via: Client | None = None) -> Any:
        via = via or client
        if i == 3:
            return via.post(f"{item}/stop", headers=SF)
        return via.post(f"{item}/promote", json={"variant": "AB"[i % 2]}, headers=SF)

    def end_elsewhere(i: int) -> Any:  # another server process of the fleet (PostgreSQL)
        return end(i, other)

    other = await make_app() if client.app[delivery_key].store.shared else client
    answers = await at_once(4, lambda i: end(i) if i % 2 else end_elsewhere(i))
    assert sorted(s for s, _ in answers) == [200, 409, 409, 409], answers
    [(_, won)] = [a for a in answers if a[0] == 200]
    for status, got in answers:
        if status == 409:
            refused(got, status, 409, "x", "实验")
    read = await (await client.get(item, headers=SF)).json()
    assert read["state"] == won["state"] and read["winner"] == won["winner"]
    promoted = await audit_actions(client, "promote experiment variant")
    stopped = await audit_actions(client, "stop experiment")
    assert len(promoted) + len(stopped) == 1
    if won["state"] == "promoted":
        assert promoted[0]["detail"]["winner"] == won["winner"]
        version = {"A": 1, "B": 2}[won["winner"]]
        assert (await client.app[delivery_key].store.get("card", "sf", "hangup"))["version"] == version
    # and with promotions alone: a second experiment, three promotions at once
    y = await (await client.post(XS, json=body(), headers=SF)).json()
    answers = await at_once(
        3, lambda i: client.post(f"{XS}/{y['id']}/promote", json={"variant": "B"}, headers=SF)
    )
    assert sorted(s for s, _ in answers) == [200, 409, 409], answers
    mine = [e for e in await audit_actions(client, "promote experiment variant")
            if e["detail"]["experiment"] == y["id"]]  # fmt: skip
    assert len(mine) == 1
    # simultaneous weight changes: both kept, one after the other
    z = await (await client.post(XS, json=body(), headers=SF)).json()
    answers = await at_once(
        2,
        lambda i: client.put(f"{XS}/{z['id']}/weights", json={"weights": {"AB"[i]: 5 + i}}, headers=SF),
    )
    assert [s for s, _ in answers] == [200, 200]
    read = await (await client.get(f"{XS}/{z['id']}", headers=SF)).json()
    assert len(read["history"]) == 3 and [v["weight"] for v in read["variants"]] == [5, 6]


async def test_the_dry_run_shows_the_variant_a_number_gets(make_app: AppFactory) -> None:
    client = await make_app()
    await two_versions(client)
    x = await (await client.post(XS, json=body(), headers=SF)).json()
    store = client.app[delivery_key].store
    seen = set()
    for i in range(10):
        person = f"+86136{i:08d}"
        dry = await client.post(
            "/api/enterprises/sf/dry-run", json={"line": SF_LINE, "to": person, "phase": "ended"}, headers=SF
        )
        got = await dry.json()
        assert dry.status == 200, got
        assert got["experiment"]["experiment"] == x["id"]
        variant, version = got["experiment"]["variant"], got["experiment"]["version"]
        assert version == {"A": 1, "B": 2}[variant] == got["card"]["version"]
        sms = next(c for c in got["channels"] if c["channel"] == "sms")["legacy"]["text"]
        assert ("SF2000000000002" in sms) == (version == 2), sms  # that version's content, composed
        # the real call to that number gets the same variant and version
        await call(client, f"dry{i}", "ended", callee=person)
        d = await store.delivery((await settle(client, f"dry{i}:ended"))["id"])
        assert d is not None and (d.data["variant"], d.data["version"]) == (variant, version)
        seen.add(variant)
    assert seen == {"A", "B"}
    await client.post(f"{XS}/{x['id']}/stop", headers=SF)
    dry = await client.post(
        "/api/enterprises/sf/dry-run",
        json={"line": SF_LINE, "to": "+8613600000000", "phase": "ended"},
        headers=SF,
    )
    got = await dry.json()
    assert got["experiment"] is None and got["card"]["version"] == 2


async def test_every_bad_input_names_its_field_in_chinese(make_app: AppFactory) -> None:
    client = await make_app()
    await two_versions(client)
    pending = await client.put(CARD, json=edited("SF3000000000003"), headers=SF)  # v3 waits for review
    assert (await pending.json())["review"]["state"] == "pending"

    async def start(data: Any, path: str, title: str, status: int = 422) -> None:
        resp = (
            await client.post(XS, json=data, headers=SF)
            if not isinstance(data, str)
            else await client.post(XS, data=data, headers={**SF, "Content-Type": "application/json"})
        )
        refused(await resp.json(), resp.status, status, path, title)

    def two(a: dict[str, Any], b: dict[str, Any] | None = None) -> dict[str, Any]:
        return body(variants=[{"name": "A", "version": 1, **a}, {"name": "B", "version": 2, **(b or {})}])

    await start(body(variants=[{"name": "A", "version": 1}]), "$.variants", "版本")
    await start(
        body(variants=[{"name": f"V{i}", "version": 1 + i % 2} for i in range(6)]), "$.variants", "版本"
    )
    await start(two({"weight": 0}, {"weight": 0}), "$.variants[0].weight", "权重")
    await start(two({"weight": -1}), "$.variants[0].weight", "权重")
    await start(two({"weight": 1e9}), "$.variants[0].weight", "权重")
    nan = '{"variants": [{"name": "A", "version": 1, "weight": NaN}, {"name": "B", "version": 2}], "goal": "tap_rate"}'
    await start(nan, "$.variants[0].weight", "权重")
    await start(nan.replace("NaN", "1e400"), "$.variants[0].weight", "权重")
    await start(two({}, {"version": 3}), "$.variants[1].version", "名片版本号")  # not approved
    await start(two({}, {"version": 9}), "$.variants[1].version", "名片版本号")  # no such version
    await start(two({}, {"name": "A"}), "$.variants[1].name", "版本名")
    await start(body(goal="button:没有这个按钮"), "$.goal", "目标")
    await start(body(goal="clicks"), "$.goal", "目标")
    await start(body(min_sample=0), "$.min_sample", "每个版本的最小样本")
    await start(body(min_sample=10**9), "$.min_sample", "每个版本的最小样本")
    await start({"variants": body()["variants"]}, "$.goal", "目标")  # missing
    await start({**body(), "colour": "red"}, "$.colour", "实验")  # unknown field
    ok = await client.post(XS, json=body(), headers=SF)
    x = await ok.json()
    assert ok.status == 201, x
    await start(body(), "$", "实验", 409)  # one runs already
    item = f"{XS}/{x['id']}"
    for weights, path in (({"C": 1}, "$.weights.C"), ({"A": 0, "B": 0}, "$.weights.A"), ({"A": -3}, "$.weights.A"),
                          ({"B": 2e6}, "$.weights.B"), ({}, "$.weights")):  # fmt: skip
        resp = await client.put(f"{item}/weights", json={"weights": weights}, headers=SF)
        refused(await resp.json(), resp.status, 422, path, "权重")
    for raw in ('{"weights": {"B": Infinity}}', '{"weights": {"B": -1e999}}'):
        resp = await client.put(
            f"{item}/weights", data=raw, headers={**SF, "Content-Type": "application/json"}
        )
        refused(await resp.json(), resp.status, 422, "$.weights.B", "权重")
    resp = await client.post(f"{item}/promote", json={"variant": "C"}, headers=SF)
    refused(await resp.json(), resp.status, 422, "$.variant", "版本名")
    assert (await client.post(f"{item}/stop", headers=SF)).status == 200
    resp = await client.post(f"{item}/promote", json={"variant": "A"}, headers=SF)  # stopped
    refused(await resp.json(), resp.status, 409, "x", "实验")
    resp = await client.put(f"{item}/weights", json={"weights": {"A": 2}}, headers=SF)
    refused(await resp.json(), resp.status, 409, "x", "实验")
    resp = await client.post(f"{item}/stop", headers=SF)
    refused(await resp.json(), resp.status, 409, "x", "实验")


def _undescribed(schema: Any, where: str) -> list[str]:
    """Every property of a schema (at any depth) without a description."""
    out = []
    if isinstance(schema, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if isinstance(sub, dict) and not sub.get("description"):
                out.append(f"{where}.{name}")
        for key, sub in schema.items():
            if key in ("properties", "items", "additionalProperties", "allOf"):
                subs = sub.values() if key == "properties" else sub if isinstance(sub, list) else [sub]
                for s in subs:
                    out += _undescribed(s, where)
    return out


async def test_the_documented_routes_describe_every_field_and_answer_as_declared(
    make_app: AppFactory,
) -> None:
    import jsonschema

    client = await make_app()
    doc = await (await client.get("/api/openapi.json")).json()
    ops = {(m, p): o for p, v in doc["paths"].items() if "/experiments" in p for m, o in v.items()}
    assert len(ops) == 6
    for (method, path), o in ops.items():
        assert all(p.get("description") for p in o["parameters"]), (method, path)
        body_schema = o.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body_schema:
            assert _undescribed(body_schema, "$") == [], (method, path)
        for status, r in o["responses"].items():
            schema = r.get("content", {}).get("application/json", {}).get("schema", {})
            if status < "400":
                assert _undescribed(schema, "$") == [], (method, path, status)
    create = ops[("post", "/api/enterprises/{eid}/cards/{id}/experiments")]["requestBody"]["content"]
    limits = create["application/json"]["schema"]["properties"]
    assert limits["variants"]["minItems"] == 2 and limits["variants"]["maxItems"] == 5
    assert limits["min_sample"]["maximum"] == 10_000_000
    assert limits["variants"]["items"]["properties"]["weight"]["maximum"] == 1_000_000

    def check(method: str, path: str, status: int, got: Any) -> None:
        schema = ops[(method, path)]["responses"][str(status)]["content"]["application/json"]["schema"]
        jsonschema.validate(got, {**schema, "components": doc["components"]})

    await two_versions(client)
    base, item = (
        "/api/enterprises/{eid}/cards/{id}/experiments",
        "/api/enterprises/{eid}/cards/{id}/experiments/{x}",
    )
    resp = await client.post(XS, json=body(), headers=SF)
    x = await resp.json()
    check("post", base, resp.status, x)
    # started two minutes ago: a change now opens a period of its own (one in the start's own
    # minute would give the first period the new weights)
    store = client.app[delivery_key].store
    kept = dict(await store.get("experiment", "sf", x["id"]))
    kept["started_at"] -= 120
    kept["history"] = [{**kept["history"][0], "at": kept["started_at"]}]
    await store.put("experiment", "sf", x["id"], kept)
    resp = await client.put(f"{XS}/{x['id']}/weights", json={"weights": {"B": 3}}, headers=SF)
    check("put", item + "/weights", resp.status, await resp.json())
    resp = await client.get(f"{XS}/{x['id']}", headers=SF)
    read = await resp.json()
    check("get", item, resp.status, read)
    assert read["analysis"]["method"] == "stratified" and len(read["analysis"]["periods"]) == 2
    assert "分层" in read["analysis"]["note"]
    check("get", base, 200, await (await client.get(XS, headers=SF)).json())
    resp = await client.post(f"{XS}/{x['id']}/promote", json={"variant": "B"}, headers=SF)
    check("post", item + "/promote", resp.status, await resp.json())
    resp = await client.post(f"{XS}/{x['id']}/stop", headers=SF)
    assert resp.status == 409
    check("post", item + "/stop", resp.status, await resp.json())


async def test_automatic_promotions_at_once_promote_once(make_app: AppFactory) -> None:
    """Every process's periodic check and every reader may find the same winner at once: one
    promotes it, with one audit entry; the others read it promoted."""
    from delivery import experiments as ex

    client = await make_app()
    await two_versions(client)
    x = await (await client.post(XS, json=body(auto_promote=True), headers=SF)).json()
    stores = [client.app[delivery_key].store]
    if stores[0].shared:  # a second server process of the fleet
        stores.append((await make_app()).app[delivery_key].store)

    async def clear(*_: Any) -> ex.Counts:
        return {"A": {"sent": 500, "tapped": 50}, "B": {"sent": 500, "tapped": 150}}

    docs = await asyncio.gather(
        *(ex.analysis(stores[i % len(stores)], "sf", dict(x), clear) for i in range(4))
    )
    assert {d["state"] for d, _ in docs} == {"promoted"}
    assert all(a["verdict"]["winner"] == "B" for _, a in docs)
    assert len(await audit_actions(client, "promote experiment winner")) == 1
    assert (await stores[0].get("card", "sf", "hangup"))["version"] == 2
