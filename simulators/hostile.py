"""A hostile designer: template expressions that, without the render's budget, run for a tenth
of a second to half a minute or allocate gigabytes before anything is checked (lazy producers
such as `map` and `select`, and the filters and statements that iterate them).

tests/renderer/test_lazy_budget.py asserts that each is refused; bench/template_budget_bench.py
measures how far past the limits each gets first. Kept here, beside the other simulated outsiders,
so both read the same list.
"""

from __future__ import annotations

W = "('x '*49999).split()"  # 49,999 one-letter words: within the size limit
PATH = "'" + ".".join(["0"] * 200) + "'"  # 'x'[0][0]... is 'x': 200 lookups per element
BIG = "('y' * 99999)"
CENTER = f"{W}|map('center', 99999)"  # 49,999 strings of 99,999 characters, one at a time

# two chains of 49,999 strings of 99,999 characters: a maximum and a list
MAP_MAX = f"{{{{ {W}|map('center', 99999)|map('upper')|map('lower')|map('title')|max|length }}}}"
MAP_LIST = f"{{{{ {CENTER}|list|length }}}}"

REFUSED: list[tuple[str, str]] = [
    ("map-max", MAP_MAX),
    ("map-list", MAP_LIST),
    # producers, each element charged (the clock, the total size)
    ("map-attribute", f"{{{{ {W}|map(attribute={PATH})|list|length }}}}"),
    ("map-chain", f"{{{{ {W}" + "|map('string')" * 40 + "|max }}"),
    ("select-test", f"{{{{ {W}|select('in', {BIG})|list|length }}}}"),
    ("select-chain", f"{{{{ {W}" + "|select" * 60 + "|max }}"),
    ("reject-chain", f"{{{{ {W}" + "|reject('none')" * 40 + "|max }}"),
    ("selectattr-path", f"{{{{ {W}|selectattr({PATH})|list|length }}}}"),
    ("rejectattr-path", f"{{{{ {W}|rejectattr({PATH})|list|length }}}}"),
    ("selectattr-test", f"{{{{ {W}" + f"|selectattr('0', 'in', {BIG})" * 4 + "|list|length }}"),
    ("unique-path", f"{{{{ {W}|unique(attribute={PATH})|list|length }}}}"),
    ("batch-chain", f"{{{{ {W}" + "|batch(1)" * 60 + "|max|length }}"),
    ("slice", f"{{{{ {CENTER}|slice(2)|first|length }}}}"),
    ("reverse", f"{{{{ {CENTER}|reverse|first|length }}}}"),
    ("sort-path", f"{{{{ {W}|sort(attribute={PATH})|length }}}}"),
    ("groupby-path", f"{{{{ {W}|groupby({PATH}, default='x')|first|length }}}}"),
    # consumers of a producer
    ("max-path", f"{{{{ {W}|max(attribute={PATH}) }}}}"),
    ("min-path", f"{{{{ {W}|min(attribute={PATH}) }}}}"),
    ("join-path", f"{{{{ {W}|join('', attribute={PATH})|length }}}}"),
    ("sum", f"{{{{ {CENTER}|map('length')|sum }}}}"),
    ("first", f"{{{{ {CENTER}|reject|first }}}}"),
    ("string", f"{{{{ {CENTER}|list|string|length }}}}"),
    (
        "loop",
        f"{{% for s in {CENTER}|map('upper') %}}"
        "{% if loop.last %}{{ s|length }}{% endif %}{% endfor %}",
    ),
    ("in", f"{{{{ 'z' in {CENTER}|map('upper') }}}}"),
    ("str-join", f"{{{{ ''.join({CENTER}|map('trim'))|length }}}}"),
    ("dict", f"{{{{ dict({CENTER}|map('upper')|batch(2))|length }}}}"),
    (
        "namespace",
        f"{{% set ns = namespace(n=0) %}}{{% for s in {CENTER}|map('upper') %}}"
        "{% set ns.n = ns.n + s|length %}{% endfor %}{{ ns.n }}",
    ),
]
