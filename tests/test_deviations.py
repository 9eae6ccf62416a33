"""The known-deviations record: parsing, version matching, and that every entry names a property."""

import pytest

from conformance import deviations


def test_committed_file_parses_and_names_real_properties():
    entries = deviations.load()
    assert entries, "the record is empty"
    names = deviations.suite_test_names()
    for dev in entries:
        assert dev.test.split("[")[0] in names, f"line {dev.line}: {dev.test!r} names no property"
        assert dev.reason and dev.requirements


def test_requirements_match_installed_versions():
    dev = deviations.Deviation("test_x", ("flax>=0.12", "jax<0.11"), "why", 1)
    assert dev.applies({"flax": "0.12.8", "jax": "0.10.2"})
    assert not dev.applies({"flax": "0.11.2", "jax": "0.10.2"})
    assert not dev.applies({"flax": "0.12.8"})  # jax unknown: no match


def test_malformed_line_is_a_clear_error(tmp_path):
    p = tmp_path / "dev.txt"
    p.write_text("# comment\ntest_a | flax>=0.1\n")
    with pytest.raises(ValueError, match=r"dev.txt:2: expected 'property \| requirements \| why'"):
        deviations.load(str(p))


def test_entries_may_name_one_parametrization():
    assert deviations.property_of("test_x[zoo_dropout-cpu:0]") == "test_x[zoo_dropout]"
    assert deviations.property_of("test_x[cpu:1]") == "test_x"
    assert deviations.property_of("test_x[name]") == "test_x[name]"
