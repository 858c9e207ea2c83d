"""Benchmarks of a running noetl-mesh: `python -m bench [ingest|chain|all]` (see bench/README.md).

A benchmark prints figures; it asserts nothing. Every load loop is bounded in count and time and
every address it talks to is on 127.0.0.1.
"""
