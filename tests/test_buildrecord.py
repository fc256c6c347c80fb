"""The facts a chapter run records for the book's build-status page (condspace._buildrecord)."""

from __future__ import annotations

import json

from condspace import _buildrecord, backend


def test_note_is_a_no_op_outside_a_book_build(monkeypatch, tmp_path):
    monkeypatch.delenv(_buildrecord.ENV_VAR, raising=False)
    _buildrecord.note("backend", "numpy")
    assert list(tmp_path.iterdir()) == []


def test_notes_merge_into_the_chapter_record(monkeypatch, tmp_path):
    record = tmp_path / "status" / "01.json"
    monkeypatch.setenv(_buildrecord.ENV_VAR, str(record))
    record.parent.mkdir()
    record.write_text(json.dumps({"parameters": {"FAST": True}}))  # what execute_chapter starts with
    backend.resolve("numpy")  # the library notes where it runs
    _buildrecord.note("caches", "posterior hit", append=True)
    _buildrecord.note("caches", "posterior hit", append=True)  # a repeat is written once
    _buildrecord.note("caches", "posterior built", append=True)
    facts = _buildrecord.read(record)
    assert facts["parameters"] == {"FAST": True}
    assert facts["backend"] == ["numpy"] and facts["device"] == ["CPU"]
    assert facts["caches"] == ["posterior hit", "posterior built"]


def test_an_unreadable_record_reads_as_empty(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert _buildrecord.read(bad) == {} and _buildrecord.read(tmp_path / "missing.json") == {}
