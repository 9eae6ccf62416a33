"""The known-deviations record: parsing, version matching, and that every entry names a property."""

import os

import pytest

from conformance.core import deviations


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


def test_golden_deviations_describe_the_committed_records_only(tmp_path, monkeypatch):
    """Against another record (a gate baseline's own), no known deviation excuses a golden property."""
    from conformance.core import config
    from conformance.golden import contract as golden
    from conformance.golden import references
    from conformance.golden import zoo as zoo_golden

    names = deviations.suite_test_names()
    assert set(golden.GOLDEN_PROPERTIES + zoo_golden.GOLDEN_PROPERTIES) <= names
    monkeypatch.delenv(config.GOLDEN_RECORD_ENV, raising=False)
    monkeypatch.delenv(config.ZOO_RECORD_ENV, raising=False)
    assert all(references.reference_is_committed(p) for p in golden.GOLDEN_PROPERTIES + zoo_golden.GOLDEN_PROPERTIES)
    committed = os.path.basename(golden.chosen_record())
    monkeypatch.setenv(config.GOLDEN_RECORD_ENV, committed)  # a committed record by name is still committed
    assert references.reference_is_committed("test_golden_numerics")
    own = tmp_path / "contract.json"
    own.write_text("{}")
    monkeypatch.setenv(config.GOLDEN_RECORD_ENV, str(own))
    monkeypatch.setenv(config.ZOO_RECORD_ENV, str(tmp_path / "zoo.json"))
    assert not references.reference_is_committed("test_golden_numerics")
    assert not references.reference_is_committed("test_zoo_golden_dropout_masks")
    assert references.reference_is_committed("test_apply_rejects_missing_leaf")  # not a golden property


class _Item:
    def __init__(self, name):
        self.name = self.originalname = name
        self.markers, self.user_properties = [], []

    def add_marker(self, marker):
        self.markers.append(marker)


def test_a_golden_deviation_is_not_applied_against_a_baselines_record(tmp_path, monkeypatch):
    from conformance import conftest
    from conformance.core import config

    entry = deviations.Deviation("test_golden_numerics", ("flax>=0",), "the committed record is another release's", 1)
    monkeypatch.setattr(deviations, "load", lambda: [entry])
    monkeypatch.setattr(deviations, "installed_versions", lambda: {"flax": "0.12.8"})
    monkeypatch.delenv(config.GOLDEN_RECORD_ENV, raising=False)
    committed = _Item("test_golden_numerics")
    conftest.pytest_collection_modifyitems(None, [committed])
    assert [m.name for m in committed.markers] == ["xfail"]
    monkeypatch.setenv(config.GOLDEN_RECORD_ENV, str(tmp_path / "contract.json"))  # the gate's baseline record
    baseline = _Item("test_golden_numerics")
    conftest.pytest_collection_modifyitems(None, [baseline])
    assert baseline.markers == [] and baseline.user_properties == []
