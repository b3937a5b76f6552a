"""Build the project's shipped CJK font: a GB2312 + Latin subset of Noto Sans CJK SC.

Run once by a maintainer (needs fontTools and Debian's fonts-noto-cjk); the output is committed
under assets/fonts/ so every machine renders cards with the very same glyphs. The full
Noto Sans CJK collection is ~20 MB per weight; GB2312 (6,763 hanzi, every character of the
通用规范汉字表 first tier included) + Latin + CJK/full-width punctuation is ~2 MB.

    .venv/bin/pip install fonttools
    .venv/bin/python scripts/make_cjk_font.py /usr/share/fonts/opentype/noto
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection

OUT = Path(__file__).resolve().parent.parent / "assets" / "fonts"
SC_INDEX_NAME = "Noto Sans CJK SC"
WEIGHTS = {"Regular": "NotoSansCJK-Regular.ttc", "Bold": "NotoSansCJK-Bold.ttc"}


def gb2312_chars() -> set[str]:
    """Every character GB2312 encodes (rows 0xA1-0xF7, cells 0xA1-0xFE)."""
    out: set[str] = set()
    for hi in range(0xA1, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                out.add(bytes((hi, lo)).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return out


def wanted() -> set[str]:
    chars = gb2312_chars()
    ranges = [
        (0x20, 0x7E),  # ASCII
        (0xA0, 0xFF),  # Latin-1 (¥ · × ÷ é ...)
        (0x2000, 0x206F),  # general punctuation (— … ‘ ’ “ ”)
        (0x2100, 0x215F),  # letterlike (℃ № ™)
        (0x2190, 0x21FF),  # arrows
        (0x2460, 0x24FF),  # ① ②: numbered menus
        (0x25A0, 0x25FF),  # geometric shapes ● ■ ▶
        (0x2600, 0x266F),  # ☆ ★ ☎
        (0x2700, 0x27BF),  # ✓ ✔
        (0x3000, 0x303F),  # CJK symbols and punctuation
        (0xFF00, 0xFFEF),  # full-width forms
    ]
    for lo, hi in ranges:
        chars.update(chr(c) for c in range(lo, hi + 1))
    # A few common characters outside GB2312 (通用规范汉字表, names, places).
    chars.update("啰喆堃珺昇犇镕淼瑄琍赟翀甦叇槿")
    return chars


def main(src_dir: str) -> None:
    text = "".join(sorted(wanted()))
    OUT.mkdir(parents=True, exist_ok=True)
    for weight, fname in WEIGHTS.items():
        coll = TTCollection(str(Path(src_dir) / fname))
        font = next(f for f in coll.fonts if f["name"].getDebugName(1) == SC_INDEX_NAME)
        opts = subset.Options()
        opts.layout_features = ["kern", "palt"]  # no locl/vert/liga: they pull in ~6k extra glyphs
        opts.hinting = False
        opts.name_languages = ["*"]
        opts.notdef_outline = True
        sub = subset.Subsetter(opts)
        sub.populate(text=text)
        sub.subset(font)
        dest = OUT / f"NotoSansSC-Subset-{weight}.otf"
        font.save(str(dest))
        print(dest, dest.stat().st_size)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/fonts/opentype/noto")
