"""What short links save: for every shipped template (card_templates/, its sample data) and each
legacy channel, the units and segments of the text as degraded today and with its web links
written as short links on the base `https://mp.cn/` (`mp.cn/` + a 10-character code), and what
gave way (buttons left out, parts shortened) either way. The codes are filled in as the chain
does (LegacyText.fill), so the figures are those of a text as sent.

Run: .venv/bin/python bench/link_segments.py [--base https://mp.cn/] [--card-page]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from delivery.shortlinks import CODE_LENGTH, new_code, written_base  # noqa: E402
from renderer import TemplateStore  # noqa: E402
from renderer.legacy import LegacyText, LinkForm, degrade  # noqa: E402

CHANNELS = ("ussd", "flash", "sms")


def _gave_way(t: LegacyText) -> str:
    parts = [f"-{k}" for k in t.dropped] + list(t.shortened)
    return ",".join(parts) or "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="https://mp.cn/")
    ap.add_argument("--card-page", action="store_true", help="add the card-page link line on SMS too")
    args = ap.parse_args()
    form = LinkForm(written_base(args.base), CODE_LENGTH)
    store = TemplateStore(ROOT / "card_templates", reload_interval=0)
    print(f"short links as {form.prefix}{'x' * CODE_LENGTH} ({len(form.prefix) + CODE_LENGTH} characters)")
    head = (
        f"{'template':<20} {'channel':<6} {'links':>5}  {'units':>9}  {'segments':>8}  "
        f"{'gave way (today → short)':<40}"
    )
    print(head)
    print("-" * len(head))
    saved_segments = 0
    fewer = 0
    for name in store.names():
        template = store.get(name)
        msg = template.render(template.sample)
        for channel in CHANNELS:
            page = args.card_page and channel == "sms"
            plain = degrade(
                msg, channel, links=LinkForm(form.prefix, CODE_LENGTH, False, True) if page else None
            )
            short = degrade(msg, channel, links=LinkForm(form.prefix, CODE_LENGTH, True, page))
            if plain.links:
                plain = plain.fill([new_code() for _ in plain.links])
            sent = short.fill([new_code() for _ in short.links])
            n = sum(1 for s in short.links if s.key != "page")
            d = len(plain.segments) - len(sent.segments)
            saved_segments += d if channel == "sms" else 0
            fewer += channel == "sms" and d > 0
            print(
                f"{name:<20} {channel:<6} {n:>5}  {plain.units:>4}→{sent.units:<4}  "
                f"{len(plain.segments):>3}→{len(sent.segments):<4}  "
                f"{_gave_way(plain) + ' → ' + _gave_way(sent):<40}"
            )
    print(f"SMS: {fewer} templates take fewer segments, {saved_segments} segments saved per recipient in all")
    courier = store.get("courier-hangup")
    c = degrade(courier.render(courier.sample), "sms", links=form)
    before = degrade(courier.render(courier.sample), "sms")
    print(
        f"courier-hangup SMS: {before.units} units = {len(before.segments)} segments today, "
        f"{c.units} units = {len(c.segments)} segments with short links"
    )
    return 0 if len(c.segments) <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
