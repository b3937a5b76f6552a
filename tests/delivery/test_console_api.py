"""The API the console drives, on both stores: session sign-in (cookie flags, CSRF on every
write, another origin refused, sign-out, rate limit, a revoked key ends its sessions), paged and
searched lists, the operator's verification queue, staff CSV import (all or nothing, every bad
row named) and export, keys listed and revoked, opt-outs searched and exported, the dry run."""

from __future__ import annotations

import csv
import io
from typing import Any

from mingpian.api.delivery import delivery_key
from mingpian.api.delivery.session import ADDRESS_FAILURES, KEY_FAILURES

from .support import CUSTOMER, OPERATOR, SF_KEY, AppFactory, Client, auth, sample


async def sign_in(client: Client, key: str) -> dict[str, Any]:
    resp = await client.post("/api/session", json={"key": key})
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


def w(csrf: str, **more: str) -> dict[str, str]:
    return {"X-CSRF-Token": csrf, **more}


async def test_session_cookie_csrf_and_sign_out(make_app: AppFactory) -> None:
    client = await make_app()
    resp = await client.post("/api/session", json={"key": SF_KEY})
    cookie = resp.headers["Set-Cookie"]
    assert resp.status == 201
    for flag in ("HttpOnly", "SameSite=Strict", "Max-Age=28800", "Path=/"):
        assert flag in cookie
    assert "Secure" not in cookie  # plain HTTP here; behind HTTPS the flag is set (next test)
    body = await resp.json()
    assert body["enterprise"] == "sf" and body["operator"] is False and len(body["csrf"]) > 20
    assert SF_KEY not in cookie
    # reads need only the cookie; the session is the enterprise's: others' ids are 404
    assert (await client.get("/api/enterprises/sf/lines")).status == 200
    assert (await client.get("/api/enterprises/cmb/lines")).status == 404
    assert (await client.get("/api/enterprises/cmb/staff")).status == 404
    line = {"number": "13800000077", "label": "新线路"}
    # a write without the CSRF token, with a wrong one, or from another origin: refused
    for headers in ({}, w("nope"), w(body["csrf"], Origin="http://evil.example")):
        r = await client.post("/api/enterprises/sf/lines", json=line, headers=headers)
        assert r.status == 403 and (await r.json())["error"] == "csrf_failed"
    r = await client.post("/api/enterprises/sf/lines", json=line, headers=w(body["csrf"]))
    assert r.status == 201
    me = await client.get("/api/session")
    assert (await me.json())["csrf"] == body["csrf"]
    assert (await client.delete("/api/session")).status == 403  # sign-out is a write too
    assert (await client.delete("/api/session", headers=w(body["csrf"]))).status == 204
    assert (await client.get("/api/session")).status == 401
    assert (await client.get("/api/enterprises/sf/lines")).status == 401


async def test_secure_cookie_behind_https_and_sign_in_from_elsewhere(make_app: AppFactory) -> None:
    client = await make_app(public_base_url="https://cards.example.com")
    resp = await client.post("/api/session", json={"key": SF_KEY})
    assert "Secure" in resp.headers["Set-Cookie"]
    other = await client.post("/api/session", json={"key": SF_KEY}, headers={"Origin": "http://evil.example"})
    assert other.status == 403


async def test_wrong_keys_are_rate_limited_but_never_the_right_one(make_app: AppFactory) -> None:
    """A key tried again and again is refused; so is a spray of keys from one address; the right
    key signs in all the same (behind a proxy every user shares one address)."""
    client = await make_app()
    for _ in range(KEY_FAILURES):
        r = await client.post("/api/session", json={"key": "mpk_wrong"})
        assert r.status == 401 and (await r.json())["problems"][0]["path"] == "$.key"
    r = await client.post("/api/session", json={"key": "mpk_wrong"})
    assert r.status == 429 and int(r.headers["Retry-After"]) > 0
    await sign_in(client, SF_KEY)
    # many different keys from the address: past its limit a wrong key is refused, the right one is not
    answers = [
        (await client.post("/api/session", json={"key": f"mpk_guess-{i}"})).status
        for i in range(ADDRESS_FAILURES)
    ]
    assert set(answers) <= {401, 429} and answers[-1] == 429
    r = await client.post("/api/session", json={"key": "mpk_guess-last"})
    assert r.status == 429 and int(r.headers["Retry-After"]) > 0
    await sign_in(client, SF_KEY)
    await sign_in(client, OPERATOR)
    assert (await client.post("/api/session", json={})).status == 422


async def test_the_limits_hold_across_the_workers_that_share_redis(
    make_app: AppFactory, backend: dict[str, Any]
) -> None:
    """On a fleet (Redis counters) a wrong key refused by one worker is refused by the next."""
    first = await make_app()
    for _ in range(KEY_FAILURES):
        assert (await first.post("/api/session", json={"key": "mpk_wrong"})).status == 401
    await first.close()
    second = await make_app()  # another worker on the same store (here: after the first)
    r = await second.post("/api/session", json={"key": "mpk_wrong"})
    assert r.status == (429 if backend.get("delivery_counters") == "redis" else 401)
    await sign_in(second, SF_KEY)


async def test_behind_trusted_proxies_the_forwarded_client_is_counted(make_app: AppFactory) -> None:
    """X-Forwarded-For names the client only when a trusted proxy sent it: the right-most address
    that is not one of the proxies; from anyone else it is ignored."""
    client = await make_app(trusted_proxies="127.0.0.1/32,10.0.0.0/8")
    spray = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9, 10.1.1.1"}  # the client is 203.0.113.9
    answers = [
        (await client.post("/api/session", json={"key": f"mpk_g{i}"}, headers=spray)).status
        for i in range(ADDRESS_FAILURES + 1)
    ]
    assert answers[-1] == 429
    # another client behind the same proxy is not held back, whatever it forges on the left
    other = {"X-Forwarded-For": "203.0.113.9, 192.0.2.44"}
    assert (await client.post("/api/session", json={"key": "mpk_x"}, headers=other)).status == 401
    await client.close()
    plain = await make_app()  # no trusted proxies: the header is the client's own word, ignored
    for i in range(ADDRESS_FAILURES + 1):
        await plain.post(
            "/api/session", json={"key": f"mpk_h{i}"}, headers={"X-Forwarded-For": f"192.0.2.{i}"}
        )
    assert (await plain.post("/api/session", json={"key": "mpk_y"}, headers=other)).status == 429


async def test_session_survives_a_restart_and_ends_with_its_key(make_app: AppFactory) -> None:
    client = await make_app()
    op = auth(OPERATOR)
    issued = await (await client.post("/api/enterprises/sf/keys?label=前台", headers=op)).json()
    body = await sign_in(client, issued["key"])
    listed = await (await client.get("/api/enterprises/sf/keys")).json()
    assert {"id": issued["id"], "label": "前台"} in [
        {"id": k["id"], "label": k["label"]} for k in listed["keys"]
    ]
    assert all("key" not in k for k in listed["keys"])
    # another worker (here: the app started again on the same store) accepts the session
    cookies = {c.key: c.value for c in client.session.cookie_jar}
    await client.close()
    again = await make_app()
    again.session.cookie_jar.update_cookies(cookies)
    assert (await again.get("/api/enterprises/sf")).status == 200
    # revoking the key (as the enterprise itself) ends its sessions
    r = await again.delete(f"/api/enterprises/sf/keys/{issued['id']}", headers=w(body["csrf"]))
    assert r.status == 204
    assert (await again.get("/api/enterprises/sf")).status == 401
    assert (await again.delete("/api/enterprises/sf/keys/abcdefabcdef", headers=op)).status == 404


async def test_paged_search_and_the_verification_queue(make_app: AppFactory) -> None:
    client = await make_app()
    sf = auth(SF_KEY)
    for i in range(30):
        r = await client.post(
            "/api/enterprises/sf/lines",
            json={"number": f"1380000{i:04d}", "label": f"网点{i:02d}", "group": "网点" if i % 2 else "总部"},
            headers=sf,
        )
        assert r.status in (201, 409)
    page = await (await client.get("/api/enterprises/sf/lines?limit=10&offset=10", headers=sf)).json()
    assert page["total"] == 31 and len(page["lines"]) == 10 and page["offset"] == 10
    found = await (await client.get("/api/enterprises/sf/lines?q=网点07", headers=sf)).json()
    assert [x["label"] for x in found["lines"]] == ["网点07"] and found["total"] == 1
    odd = await (await client.get("/api/enterprises/sf/lines?q=100%25&limit=5", headers=sf)).json()
    assert odd["total"] == 0  # % is searched for literally
    assert (await client.get("/api/enterprises/sf/lines?limit=0", headers=sf)).status == 400
    assert (await client.get("/api/lines", headers=sf)).status == 403
    queue = await (await client.get("/api/lines?unverified=1&limit=100", headers=auth(OPERATOR))).json()
    numbers = {x["number"] for x in queue["lines"]}
    assert "+8613800000001" not in numbers and "+864008111111" in numbers
    assert all(x["enterprise"] in ("sf", "cmb") for x in queue["lines"])
    r = await client.post(
        "/api/enterprises/sf/lines/13800000005/verify",
        json={"verified": True, "note": "营业执照已核"},
        headers=auth(OPERATOR),
    )
    assert r.status == 200
    line = await (await client.get("/api/enterprises/sf/lines/13800000005", headers=sf)).json()
    assert line["verified"] is True and line["verify_note"] == "营业执照已核"


def staff_csv(rows: int, bad: dict[int, str] | None = None) -> str:
    out = io.StringIO()
    wr = csv.writer(out)
    wr.writerow(["id", "name", "employee.name", "employee.title", "employee.mobile"])
    for i in range(rows):
        mobile = (bad or {}).get(i, f"139{i:08d}")
        wr.writerow([f"e{i}", f"员工{i}", f"员工{i}", "快递员", mobile])
    return out.getvalue()


async def test_staff_csv_all_or_nothing_and_round_trip(make_app: AppFactory) -> None:
    client = await make_app()
    sf = {**auth(SF_KEY), "Content-Type": "text/csv"}
    url = "/api/enterprises/sf/staff-csv?template=staff-card"
    bad = await client.post(url, data=staff_csv(2000, {5: "12345", 1500: "abc"}).encode(), headers=sf)
    body = await bad.json()
    assert bad.status == 422 and body["bad_rows"] == 2
    assert [(p["row"], p["column"]) for p in body["problems"]] == [
        (7, "employee.mobile"),
        (1502, "employee.mobile"),
    ]
    assert body["problems"][0]["path"] == "row 7: employee.mobile"
    total = await (await client.get("/api/enterprises/sf/staff?limit=1", headers=sf)).json()
    assert total["total"] == 1  # nothing half-imported: only the seeded member
    ok = await client.post(url, data=staff_csv(2000).encode(), headers=sf)
    assert ok.status == 200 and (await ok.json())["imported"] == 2000
    one = await (await client.get("/api/enterprises/sf/staff/e1999", headers=sf)).json()
    assert one["data"]["employee"] == {"name": "员工1999", "title": "快递员", "mobile": "13900001999"}
    found = await (await client.get("/api/enterprises/sf/staff?q=员工123&limit=50", headers=sf)).json()
    assert found["total"] == 11  # 员工123, 员工1230…1239
    exported = await client.get("/api/enterprises/sf/staff-csv", headers=sf)
    text = (await exported.text()).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:2] == ["id", "name"] and len(rows) == 2002
    again = await client.post(url, data=text.encode(), headers=sf)
    assert again.status == 200
    dup = await client.post(url, data=(staff_csv(2) + "e1,重复,x,y,13900000001\r\n").encode(), headers=sf)
    assert any(p["column"] == "id" for p in (await dup.json())["problems"])
    header = await client.post(url, data=b"name,id\r\n", headers=sf)
    assert header.status == 422 and (await header.json())["problems"][0]["row"] == 1
    assert (await client.post(url, data=b"\xff\xfe", headers=sf)).status == 400
    as_json = {**auth(SF_KEY), "Content-Type": "application/json"}
    assert (await client.post(url, data=b"{}", headers=as_json)).status == 415
    assert (
        await client.post("/api/enterprises/cmb/staff-csv", data=b"id,name\r\n", headers=sf)
    ).status == 404


async def test_formula_cells_are_defused_on_export(make_app: AppFactory) -> None:
    client = await make_app()
    sf = auth(SF_KEY)
    r = await client.post(
        "/api/enterprises/sf/staff",
        json={
            "id": "evil",
            "name": '=HYPERLINK("http://x")',
            "data": {"employee": {"mobile": "+8613900000000"}},
        },
        headers=sf,
    )
    assert r.status == 201
    text = await (await client.get("/api/enterprises/sf/staff-csv", headers=sf)).text()
    assert "'=HYPERLINK" in text and "'+8613900000000" in text
    back = await client.post(
        "/api/enterprises/sf/staff-csv", data=text.encode(), headers={**sf, "Content-Type": "text/csv"}
    )
    assert back.status == 200
    doc = await (await client.get("/api/enterprises/sf/staff/evil", headers=sf)).json()
    assert doc["name"].startswith("=HYPERLINK") and doc["data"]["employee"]["mobile"] == "+8613900000000"


async def test_dry_run_shows_each_channel_without_sending(make_app: AppFactory) -> None:
    client = await make_app()
    sf = auth(SF_KEY)
    r = await client.post(
        "/api/enterprises/sf/dry-run",
        json={"line": "138-0000-0001", "to": CUSTOMER, "phase": "ended"},
        headers=sf,
    )
    body = await r.json()
    assert r.status == 200, body
    assert body["card"]["id"] == "hangup" and body["chain"] == ["ussd", "flash", "sms"]
    assert body["brand"]["signature"] == "顺丰速运"  # a verified line speaks with the brand
    by = {c["channel"]: c for c in body["channels"]}
    assert by["sms"]["legacy"]["text"] and by["sms"]["cost"]["units"] >= 1
    assert "skipped" not in by["ussd"]
    assert await client.app[delivery_key].store.deliveries_of_call("dry-run") == []
    hotline = {"line": "400-811-1111", "to": CUSTOMER, "phase": "ended"}
    body = await (await client.post("/api/enterprises/sf/dry-run", json=hotline, headers=sf)).json()
    assert body["brand"]["signature"] == "400-811-1111"  # unverified: the number as people read it
    pre = {**hotline, "phase": "ringing"}
    body = await (await client.post("/api/enterprises/sf/dry-run", json=pre, headers=sf)).json()
    # the pre-call staff card needs a staff member; the hotline has none
    assert body["blocked"].startswith("the card does not render") and body["channels"] == []
    bad = await client.post(
        "/api/enterprises/sf/dry-run", json={"line": "95555", "to": CUSTOMER, "phase": "ended"}, headers=sf
    )
    assert bad.status == 404  # another enterprise's line
    bad = await client.post(
        "/api/enterprises/sf/dry-run", json={"line": "13800000001", "to": "x", "phase": "ended"}, headers=sf
    )
    assert bad.status == 422 and (await bad.json())["problems"][0]["path"] == "$.to"


async def test_optouts_search_and_csv(make_app: AppFactory) -> None:
    client = await make_app()
    r = await client.post(
        "/api/replies",
        json={"from": CUSTOMER, "to": "13800000001", "text": "TD", "channel": "sms"},
        headers=auth(OPERATOR),
    )
    assert r.status == 200
    sf = auth(SF_KEY)
    found = await (await client.get("/api/enterprises/sf/optouts?q=3912", headers=sf)).json()
    assert [o["number"] for o in found["optouts"]] == [CUSTOMER]
    none = await (await client.get("/api/enterprises/sf/optouts?q=0000000", headers=sf)).json()
    assert none["optouts"] == []
    text = await (await client.get("/api/enterprises/sf/optouts?format=csv", headers=sf)).text()
    assert text.startswith("number,at,channel,text") and CUSTOMER in text
    _ = sample  # the seed's cards come from the templates' samples


async def test_a_suspended_enterprise_sends_nothing_and_cannot_lift_it(make_app: AppFactory) -> None:
    client = await make_app()
    op, sf = auth(OPERATOR), auth(SF_KEY)
    ent = await (await client.get("/api/enterprises/sf", headers=op)).json()
    body = await sign_in(client, SF_KEY)
    assert (
        await client.put("/api/enterprises/sf", json={**ent, "suspended": True}, headers=op)
    ).status == 200
    assert (await client.get("/api/enterprises/sf", headers=sf)).status == 403
    assert (await client.get("/api/enterprises/sf/lines")).status == 403  # the session too
    assert (await client.post("/api/session", json={"key": SF_KEY})).status == 403
    r = await client.post(
        "/api/calls",
        json={"call_id": "susp", "caller": "13800000001", "callee": CUSTOMER, "phase": "ended"},
        headers=op,
    )
    out = await r.json()
    assert r.status == 202 and out["state"] == "skipped" and out["reason"] == "enterprise suspended"
    assert (await client.put("/api/enterprises/sf", json=ent, headers=op)).status == 200
    # an enterprise editing itself keeps whatever the operator decided
    r = await client.put("/api/enterprises/sf", json={**ent, "suspended": True}, headers=w(body["csrf"]))
    assert r.status == 200 and "suspended" not in await r.json()


async def test_console_page_and_files_carry_the_studio_csp(make_app: AppFactory) -> None:
    client = await make_app()
    resp = await client.get("/console")
    html = await resp.text()
    assert resp.status == 200 and "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY" and "<script>" not in html
    assert '<script type="module" src="/console/static/console.js?v=' in html
    for name, kind in (("console.js", "text/javascript"), ("console.css", "text/css")):
        r = await client.get(f"/console/static/{name}")
        assert r.status == 200 and r.content_type == kind and r.headers["X-Content-Type-Options"] == "nosniff"
        again = await client.get(f"/console/static/{name}", headers={"If-None-Match": r.headers["ETag"]})
        assert again.status == 304
    assert (await client.get("/console/static/../page.py")).status == 404
    assert (await client.get("/console/static/nope.js")).status == 404
    from mingpian.console.page import STATIC

    for path in STATIC.iterdir():
        text = path.read_text("utf-8")
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text and "localStorage" not in text
        assert "http://" not in text and "https://" not in text  # no CDN, nothing off-site
