"""Legacy benchmark: cards degraded for legacy terminals (USSD, flash SMS, SMS).

Measures, in one run:
1. Degrade + segment throughput (messages/s, one core, in process) of every sample template to
   every channel (`degrade(message, channel)`: layout, shrinking, GSM-7/UCS-2 segmentation and
   user-data hex), against a baseline measured in the same run: `to_rcs` on the same messages.
   Target: ≥ 20,000 degrades/s. CPU time of this thread is used (the machine is shared).
2. Segment counts of a few hundred generated strings (GSM-7, extension characters, CJK, emoji,
   mixed, boundary lengths) against independent peers, every disagreement listed with the rule
   of 3GPP TS 23.038 / 23.040 that decides it:
   - PyPI `smpplib` (`smpplib.gsm.make_parts`), the `gsm0338` codec (alphabet / septets) and
     `python-gsmmodem` (SMS-SUBMIT PDUs: the packed user data with UDH and fill bit), installed
     by `pip install -e '.[bench]'`;
   - npm `sms-counter`, `sms-length` and `split-sms`, run with node, installed by
     `npm install --prefix bench/peers` (skipped with a note when node or they are missing).

Run: .venv/bin/python bench/legacy_bench.py [--seconds 3] [--strings 400]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from renderer import TemplateStore, gsm, to_rcs  # noqa: E402
from renderer.legacy import degrade  # noqa: E402

CHANNELS = ("ussd", "flash", "sms")
PEERS_DIR = ROOT / "bench" / "peers"


# -- 1. throughput ------------------------------------------------------------------------------


def _rate(fn: Callable[[], int], seconds: float) -> float:
    """Calls of `fn` (each doing n operations) per CPU second of this thread, best of 3 slices."""
    fn()  # warm up
    best = 0.0
    gc.collect()
    for _ in range(3):
        done, t0 = 0, time.thread_time()
        while (elapsed := time.thread_time() - t0) < seconds / 3:
            done += fn()
        best = max(best, done / elapsed)
    return best


def bench_throughput(seconds: float) -> None:
    store = TemplateStore(ROOT / "card_templates", reload_interval=3600)
    messages = []
    for name in store.names():
        t = store.get(name)
        messages.append(t.render(t.sample))

    def all_channels() -> int:
        for m in messages:
            for ch in CHANNELS:
                degrade(m, ch)
        return len(messages) * len(CHANNELS)

    def rcs() -> int:
        for m in messages:
            to_rcs(m)
        return len(messages)

    def one(ch: str) -> Callable[[], int]:
        def run() -> int:
            for m in messages:
                degrade(m, ch)  # type: ignore[arg-type]
            return len(messages)

        return run

    long_text = "【顺丰速运】您的快递派送中，运单号 SF1234567890123。🌻" * 10
    gsm_text = "Your parcel SF1234567890123 arrives today [14:00-18:00] €0 fee. " * 5

    def encode_only() -> int:
        gsm.encode(long_text)
        gsm.encode(gsm_text)
        return 2

    print(
        f"== 1. degrade + segment throughput ({len(messages)} sample templates × "
        f"{len(CHANNELS)} channels, one core, CPU time)"
    )
    overall = _rate(all_channels, seconds)
    baseline = _rate(rcs, seconds / 2)
    print(
        f"  all channels     {overall:10,.0f} degrades/s   ({1e6 / overall:6.1f} µs each)   "
        f"target ≥ 20,000: {'MET' if overall >= 20_000 else 'NOT MET'}"
    )
    for ch in CHANNELS:
        r = _rate(one(ch), seconds / 3)
        print(f"  {ch:<16} {r:10,.0f} degrades/s   ({1e6 / r:6.1f} µs each)")
    print(f"  baseline to_rcs  {baseline:10,.0f} payloads/s   (degrade/RCS ratio {overall / baseline:.2f})")
    enc = _rate(encode_only, seconds / 3)
    print(f"  gsm.encode alone {enc:10,.0f} texts/s (a 10-segment UCS-2 text and a 2-segment GSM-7 text)")


# -- 2. cross-check -----------------------------------------------------------------------------

GSM_BASIC = gsm.BASIC_TABLE.replace(gsm.ESC, "")
EXT = "".join(gsm.EXTENSION_TABLE)
CJK = "快递派送中运单号查询物流联系快递员改约评价服务您好请回复"
EMOJI = "🌻😀👍🎉📦"
NEAR_GSM = "`ç\x1bÀ\u00a0"  # characters a peer might wrongly take for GSM-7


def corpus(n: int, seed: int = 2026) -> list[tuple[str, str]]:
    """(category, text) pairs: fixed boundary vectors first, then random strings."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = [("empty", "")]
    for k in (1, 70, 152, 153, 154, 159, 160, 161, 306, 307, 459, 460):
        out.append(("gsm-boundary", "a" * k))
    for ext in "€[]{}|^~\\\f":
        for k in (151, 152, 158, 159, 304, 305):
            out.append(("ext-boundary", "a" * k + ext + "b" * 10))
    for k in (69, 70, 71, 134, 135, 201, 202):
        out.append(("cjk-boundary", "中" * k))
    for k in (65, 66, 67, 68, 69, 132, 133, 134):
        out.append(("emoji-boundary", "中" * k + "🌻" + "中" * 10))
    # a pair straddling the boundary of texts that exactly fill k nominal segments
    for ext in "€[]{}|^~\\":
        for k in (2, 3):
            out.append(("pair-boundary", "a" * 152 + ext + "a" * (153 * k - 154)))
    for k in (2, 3, 4):
        out.append(("pair-boundary", "中" * 66 + "🌻" + "中" * (67 * k - 68)))
        out.append(("pair-boundary", "😀" * (67 * k // 2) + ("中" if k % 2 else "")))
    for ch in "`§¿\x1bç\f":
        out.append(("alphabet", f"a{ch}b"))
    pools = {
        "gsm": GSM_BASIC,
        "gsm+ext": "abcdefgh 0123" + EXT,
        "cjk": CJK,
        "emoji": CJK + EMOJI,
        "mixed": "abc 123 SF-" + CJK + EMOJI + EXT,
        "near-gsm": "abcdefgh" + NEAR_GSM,
    }
    names = list(pools)
    while len(out) < n:
        cat = names[len(out) % len(names)]
        pool = pools[cat]
        length = rng.choice(
            [rng.randrange(1, 400), rng.randrange(60, 75), rng.randrange(150, 165), rng.randrange(300, 310)]
        )
        out.append((cat, "".join(rng.choice(pool) for _ in range(length))))
    return out


def ours(text: str) -> tuple[str, int]:
    e = gsm.encode(text)
    return e.encoding, len(e.segments)


def smpplib_peer() -> Callable[[str], tuple[str, int]] | None:
    try:
        import smpplib.consts
        import smpplib.gsm
    except ImportError:
        return None

    def count(text: str) -> tuple[str, int]:
        parts, encoding, _ = smpplib.gsm.make_parts(text)
        enc = "GSM-7" if encoding == smpplib.consts.SMPP_ENCODING_DEFAULT else "UCS-2"
        return enc, len(parts)

    return count


def gsm0338_check(texts: list[str]) -> list[str]:
    """Our unpacked septets vs the gsm0338 codec's bytes, for every text both call GSM-7."""
    try:
        import gsm0338  # noqa: F401  (registers the 'gsm03.38' codec)
    except ImportError:
        return ["gsm0338 not installed (pip install -e '.[bench]')"]
    problems = []
    checked = 0
    for text in texts:
        try:
            theirs: bytes | None = text.encode("gsm03.38")
        except UnicodeEncodeError:
            theirs = None
        mine = gsm.to_septets(text).encode("latin-1") if gsm.is_gsm7(text) else None
        if theirs != mine:
            bad = sorted({c for c in text if gsm.is_gsm7(c) != _codec_ok(c)})
            problems.append(
                f"{_show(text)}: ours {_hex(mine)} vs gsm0338 {_hex(theirs)}"
                f" — characters judged differently: {bad!r}"
            )
        elif mine is not None:
            checked += 1
    print(f"  gsm0338 codec: septets identical for {checked} GSM-7 texts; {len(problems)} disagreement(s)")
    return problems


def _codec_ok(c: str) -> bool:
    try:
        c.encode("gsm03.38")
        return True
    except UnicodeEncodeError:
        return False


def gsmmodem_hex_check(texts: list[str]) -> None:
    """Our TP-UD hex (UDH + fill bit + packed septets) vs python-gsmmodem's SMS-SUBMIT PDUs.

    Only texts where its splitter is sound are compared: basic-alphabet GSM-7 (no extension
    characters, no '§'/'`', which its table swaps) of at most 306 characters. Its segment counts
    are not compared: it splits every text, UCS-2 included, every 153 characters."""
    try:
        from gsmmodem.pdu import encodeSmsSubmitPdu
    except ImportError:
        print("  python-gsmmodem not installed (pip install -e '.[bench]'): user-data check skipped")
        return
    rng = random.Random(7)
    basic = GSM_BASIC.replace("§", "")
    extra = ["".join(rng.choice(basic) for _ in range(rng.randrange(1, 307))) for _ in range(150)]
    same = diff = 0
    for text in texts + extra:
        if (
            not text
            or len(text) > 306
            or not gsm.is_gsm7(text)
            or any(c in text for c in gsm.EXTENSION_TABLE)
            or "§" in text
            or "`" in text
        ):
            continue
        e = gsm.encode(text, reference=0x5A)
        pdus = encodeSmsSubmitPdu("+8613800138000", text, reference=0x5A, requestStatusReport=False)
        theirs = [_tp_ud(bytes(p.data)) for p in pdus]
        mine = [(e.dcs, s.udl, s.user_data_hex) for s in e.segments]
        if mine == theirs:
            same += 1
        else:
            diff += 1
            print(
                f"    {_show(text)}: ours {mine[0][:2]}×{len(mine)}, gsmmodem {theirs[0][:2]}×{len(theirs)}"
            )
    print(
        f"  python-gsmmodem SMS-SUBMIT: DCS, TP-UDL and TP-UD hex identical for {same} GSM-7 "
        f"texts (single and concatenated, fill bit included); {diff} differ"
    )


def _tp_ud(pdu: bytes) -> tuple[int, int, str]:
    """(DCS, TP-UDL, TP-UD hex) of an SMS-SUBMIT PDU that starts with its SMSC field."""
    off = 1 + pdu[0]
    first = pdu[off]
    digits = pdu[off + 2]
    off += 3 + 1 + (digits + 1) // 2  # first octet, MR, DA length, TOA, DA digits
    dcs = pdu[off + 1]
    off += 2  # PID, DCS
    vpf = (first >> 3) & 3
    off += {0: 0, 2: 1}.get(vpf, 7)
    return dcs, pdu[off], pdu[off + 1 :].hex().upper()


def node_peers(texts: list[str]) -> dict[str, list[tuple[str, int]]] | str:
    node = shutil.which("node")
    if node is None:
        return "node not found"
    mods = PEERS_DIR / "node_modules"
    if not all((mods / m).is_dir() for m in ("sms-counter", "sms-length", "split-sms")):
        return f"npm peers missing: npm install --prefix {PEERS_DIR.relative_to(ROOT)}"
    script = r"""
const texts = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const sc = require('sms-counter');
const SmsCounter = sc.count ? sc : sc.default;  // an ES-module default export
const smsLength = require('sms-length');
const split = require('split-sms');
const enc = e => (e === 'UTF16' || e === 'Unicode') ? 'UCS-2' : 'GSM-7';
const out = {'sms-counter': [], 'sms-length': [], 'split-sms': []};
for (const t of texts) {
  const a = SmsCounter.count(t); out['sms-counter'].push([enc(a.encoding), a.messages]);
  const b = smsLength.count(t); out['sms-length'].push([enc(b.encoding), b.messages]);
  const c = split.split(t); out['split-sms'].push([enc(c.characterSet), c.parts.length]);
}
process.stdout.write(JSON.stringify(out));
"""
    proc = subprocess.run(
        [node, "-e", script],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        cwd=PEERS_DIR,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        return "node peers failed: " + proc.stderr.strip()[:300]
    return {k: [(e, n) for e, n in v] for k, v in json.loads(proc.stdout).items()}


def explain(text: str, mine: tuple[str, int], theirs: tuple[str, int]) -> str:
    """Which rule decides a disagreement, and who is right by the spec."""
    if not text:
        return (
            "empty text: an SMS with no user data is still one message (TP-UDL 0); a count "
            "of 0 is a UI convention, not what a gateway sends — ours"
        )
    if mine[0] != theirs[0]:
        odd = sorted({c for c in text if c in NEAR_GSM + "§\f`"})
        facts = {
            "`": "'`' is not in the TS 23.038 default alphabet (0x60 is '¿') → UCS-2",
            "§": "'§' is 0x5F of the default alphabet → GSM-7",
            "\f": "form feed is ESC 0x0A of the extension table → GSM-7, 2 septets",
            "\x1b": "0x1B is the escape to the extension table, not a character → UCS-2",
            "ç": "only 'Ç' (0x09) is in the default alphabet; 'ç' needs UCS-2",
        }
        why = "; ".join(facts[c] for c in odd if c in facts) or "alphabet tables differ"
        return f"alphabet: {why} — ours"
    enc = mine[0]
    units = gsm.units(text, enc)
    single, per = gsm.SMS_SINGLE[enc], gsm.SMS_CONCAT[enc]
    nominal = 1 if units <= single else math.ceil(units / per)
    if theirs[1] == nominal and mine[1] == nominal + 1:
        if enc == "GSM-7":
            return (
                f"boundary: the peer cuts every {per} septets and so splits an ESC + character "
                "pair across two segments (TS 23.038 §6.2.1.1: the pair is one extension-table "
                "character; a phone shows the halves as a space and a wrong basic character); "
                "kept whole, one more segment is needed — ours"
            )
        return (
            f"boundary: the peer cuts every {per} units and so splits a UTF-16 surrogate pair "
            "(emoji) across two segments (a lone surrogate is no character in UCS-2/UTF-16; "
            "each half renders as garbage); kept whole, one more segment is needed — ours"
        )
    if mine[1] == nominal and theirs[1] != nominal:
        return f"count: {units} {enc} units need {nominal} segment(s) at {single}/{per} — ours"
    return f"unexplained (units {units}, nominal {nominal}) — check by hand"


def _show(text: str) -> str:
    s = text if len(text) <= 24 else f"{text[:10]}…{text[-10:]}"
    return f"{s!r} (len {len(text)})"


def _hex(b: bytes | None) -> str:
    return "not GSM-7" if b is None else (b.hex()[:16] + ("…" if len(b) > 8 else ""))


def cross_check(n: int) -> None:
    items = corpus(n)
    texts = [t for _, t in items]
    cats = Counter(c for c, _ in items)
    print(
        f"\n== 2. segment counts vs peers: {len(texts)} strings "
        f"({', '.join(f'{k} {v}' for k, v in cats.items())})"
    )
    mine = [ours(t) for t in texts]
    peers: dict[str, list[tuple[str, int]]] = {}
    counter = smpplib_peer()
    if counter is None:
        print("  smpplib not installed (pip install -e '.[bench]'): skipped")
    else:
        peers["smpplib.make_parts"] = [counter(t) for t in texts]
    node = node_peers(texts)
    if isinstance(node, str):
        print(f"  npm peers skipped: {node}")
    else:
        peers.update(node)
    for peer, results in peers.items():
        diffs = [
            (c, t, m, r)
            for (c, t), m, r in zip(items, mine, results, strict=True)
            if (m[0], m[1]) != (r[0], r[1])
        ]
        print(f"\n  {peer}: agrees on {len(texts) - len(diffs)}/{len(texts)}; {len(diffs)} disagreement(s)")
        groups: dict[str, list[str]] = {}
        for cat, text, m, r in diffs:
            groups.setdefault(explain(text, m, r), []).append(
                f"[{cat}] {_show(text)}: ours {m[0]}×{m[1]}, peer {r[0]}×{r[1]}"
            )
        for why, lines in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            print(f"    {len(lines)} × {why}")
            for line in lines:
                print(f"        {line}")
    print()
    for line in gsm0338_check(texts):
        print(f"    {line}")
    gsmmodem_hex_check(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--strings", type=int, default=400)
    args = parser.parse_args()
    bench_throughput(args.seconds)
    cross_check(args.strings)


if __name__ == "__main__":
    main()
