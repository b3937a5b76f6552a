"""The enterprises' media library: logos, photos and short videos a card can show.

    ingest.py   an upload's kind from its bytes, re-encoded without metadata, within the caps
    files.py    the files, content-addressed under the data folder
    library.py  add / list / get / delete per enterprise, the quota, and what cards may name

A card names a library file by the data value `media:<id>` (any picture field of a template, or
an enterprise's `logo`); see docs/media.md.
"""
