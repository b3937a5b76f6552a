"""The JSON staff API holds members to the staff CSV's limits (delivery/stafflimits.py), on both
stores: each member's paths, depth, key and text lengths refused at their JSON path; the
enterprise's distinct paths and its count of members refused naming the limit; and whatever the
API takes, an export writes and an import reads back."""

from __future__ import annotations

import csv
import io
from typing import Any

from delivery import stafflimits as lim
from mingpian.api.delivery import delivery_key

from .support import CMB_KEY, AppFactory, Client, auth

KEY = auth(CMB_KEY)
STAFF = "/api/enterprises/cmb/staff"


STAFF_MAX = 2_000  # delivery_staff_max for the test (the default is a million)


async def _write(client: Client, data: dict[str, Any], mid: str = "m", method: str = "POST") -> Any:
    url = STAFF if method == "POST" else f"{STAFF}/{mid}"
    resp = await client.request(method, url, json={"id": mid, "name": "员工", "data": data}, headers=KEY)
    return resp.status, await resp.json() if resp.status != 204 else None


def _nested(depth: int, value: Any) -> dict[str, Any]:
    node: Any = value
    for i in reversed(range(depth)):
        node = {f"l{i}": node}
    return dict(node)


def _paths(problems: list[dict[str, Any]]) -> list[str]:
    return [p["path"] for p in problems]


async def test_a_member_past_a_limit_is_refused_at_its_json_path(make_app: AppFactory) -> None:
    client = await make_app()
    deep = "$.data" + "".join(f".l{i}" for i in range(lim.MAX_DEPTH))
    wide = {f"g{g}": {f"f{i}": 1 for i in range(lim.MAX_PATHS // 2 + 1)} for g in range(2)}
    long_path = {"a" * 150: {"b" * 60: "x"}}
    bad = {
        "text": ({"employee": {"title": "长" * (lim.MAX_CELL + 1)}}, "$.data.employee.title"),
        "depth": (_nested(lim.MAX_DEPTH + 1, "x"), deep),
        "key": ({"k" * (lim.MAX_NAME + 1): "x"}, "$.data"),
        "paths": (wide, "$.data"),
        "name": (long_path, f"$.data.{'a' * 150}.{'b' * 60}"),
        "list": ({"tags": ["标签" * 100] * 20}, "$.data.tags"),
        "keys of one object": ({f"f{i}": 1 for i in range(lim.MAX_PATHS + 1)}, "$.data"),
    }
    for rule, (data, path) in bad.items():
        for method in ("POST", "PUT"):
            if method == "PUT":
                assert (await _write(client, {}, "m"))[0] == 201
            status, body = await _write(client, data, "m", method)
            assert status == 422 and body["error"] == "invalid", (rule, method, body)
            assert path in _paths(body["problems"]), (rule, body["problems"])
            got = await client.get(f"{STAFF}/m", headers=KEY)
            assert got.status == (404 if method == "POST" else 200)
            if method == "PUT":
                assert (await got.json())["data"] == {}  # the stored member is untouched
                assert (await client.delete(f"{STAFF}/m", headers=KEY)).status == 204
    # at every limit at once: taken
    edge = {
        "employee": {"title": "=" + "长" * (lim.MAX_CELL - 1)},
        **_nested(lim.MAX_DEPTH, 1),
        "p" * (lim.MAX_NAME - 2): {"q": True},
        **{f"f{i}": i for i in range(lim.MAX_PATHS - 3)},
    }
    status, body = await _write(client, edge)
    assert status == 201, body


async def test_the_enterprise_paths_and_members_are_bounded(make_app: AppFactory) -> None:
    client = await make_app(delivery_staff_max=STAFF_MAX)
    half = lim.MAX_PATHS // 2
    for i in range(2):
        assert (await _write(client, {f"k{i}_{j}": "v" for j in range(half)}, f"w{i}"))[0] == 201
    # a third member with paths of its own would make the export wider than an import allows
    status, body = await _write(client, {"k2_0": "v"}, "w2")
    assert status == 409 and body["error"] == "conflict" and str(lim.MAX_PATHS) in body["message"]
    assert (await client.get(f"{STAFF}/w2", headers=KEY)).status == 404
    # the paths others already have are free; replacing a member's own paths is fine too
    assert (await _write(client, {"k0_1": "x", "k1_5": "y"}, "w2"))[0] == 201
    assert (await _write(client, {"n": "新"}, "w1", "PUT"))[0] == 200
    # staff written before the bound (here: straight into the store) may still be rewritten
    # with paths they have, never given a new one
    store = client.app[delivery_key].store
    await store.put(
        "staff", "cmb", "old", {"id": "old", "name": "旧", "data": {f"o{j}": 1 for j in range(300)}}
    )
    assert (await _write(client, {"o7": 2, "k0_3": "z"}, "w3"))[0] == 201
    status, body = await _write(client, {"o7": 2, "fresh": 1}, "w3", "PUT")
    assert status == 409 and str(lim.MAX_PATHS) in body["message"]
    # the count of members
    members = [(f"x{i:05d}", {"id": f"x{i:05d}", "name": "员"}) for i in range(STAFF_MAX - 6)]
    await store.put_many("staff", "cmb", members)
    assert (await _write(client, {}, "last"))[0] == 201  # the last one the setting allows
    status, body = await _write(client, {}, "one-more")
    assert status == 409 and str(STAFF_MAX) in body["message"]
    assert (await _write(client, {"k0_3": "改"}, "last", "PUT"))[0] == 200  # a rewrite is no new member


async def test_what_the_api_takes_an_export_writes_and_an_import_reads_back(make_app: AppFactory) -> None:
    client = await make_app()
    member = {
        "employee": {"title": "=" + "长" * (lim.MAX_CELL - 1), "tags": ["a", "b"]},
        "p" * (lim.MAX_NAME - 2): {"q": 12},
        **_nested(lim.MAX_DEPTH, "深"),
    }
    assert (await _write(client, member))[0] == 201
    resp = await client.get("/api/enterprises/cmb/staff-csv", headers=KEY)
    assert resp.status == 200
    text = await resp.text()
    assert len(next(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))) == 2 + 4
    resp = await client.post(
        "/api/enterprises/cmb/staff-csv",
        data=io.BytesIO(text.encode()),
        headers={**KEY, "Content-Type": "text/csv"},
    )
    assert resp.status == 200, await resp.text()
    back = await (await client.get(f"{STAFF}/m", headers=KEY)).json()
    assert back["data"]["employee"]["title"] == member["employee"]["title"]
    assert back["data"]["p" * (lim.MAX_NAME - 2)] == {"q": 12}
