"""Which smoke-matrix cells a selection of its tests needs (pure logic)."""

from __future__ import annotations

from tests.integration.test_smoke_matrix import ADAPTER_TESTS, cells_wanted


def test_adapter_tests_alone_need_only_their_killers_spike_cells() -> None:
    assert cells_wanted(["test_oomguard_kills_the_spike_hog"]) == ["oomguard"]
    assert cells_wanted(["test_oomd_default_config_without_swap",
                         "test_earlyoom_kills_the_spike_hog"]) == ["earlyoom", "oomd"]


def test_any_other_test_wants_the_whole_matrix() -> None:
    assert cells_wanted(["test_smoke_matrix_produces_complete_results",
                         "test_oomguard_kills_the_spike_hog"]) == []
    assert cells_wanted([*ADAPTER_TESTS, "test_smoke_matrix_produces_complete_results"]) == []


def test_every_adapter_test_exists() -> None:
    import tests.integration.test_smoke_matrix as module

    assert all(callable(getattr(module, name, None)) for name in ADAPTER_TESTS)
