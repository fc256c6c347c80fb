"""The cell registry and declarations (Liu et al. 1998; Qian et al. 2014)."""

import numpy as np
import pytest

from condspace import cells
from condspace.channels import linear_over_expm1, safe_exp, sigmoid


def test_registry_names_and_aliases():
    assert cells.available() == ("da", "stg")
    assert cells.get("liu98_stg") is cells.get("STG") is cells.STG
    assert cells.get(cells.DA) is cells.DA
    with pytest.raises(ValueError, match="unknown cell type 'hh'.*available: da, stg"):
        cells.get("hh")


def test_channel_order_and_names():
    stg, da = cells.get("stg"), cells.get("da")
    assert stg.channel_names == ("Na", "Kd", "CaT", "CaS", "KCa", "A", "H", "leak")
    assert da.channel_names == ("Na", "Kd", "CaL", "CaN", "ERG", "NMDA", "leak")
    assert stg.conductance_names[-1] == "g_leak" and stg.index("g_CaS") == 3 and da.index("ERG") == 4
    assert da.inferred_names == ("g_Na", "g_Kd", "g_CaL", "g_CaN", "g_ERG", "g_leak")
    for cell in (stg, da):
        assert set(cell.box) == set(cell.inferred_names)
        for ex in cell.examples.values():
            assert tuple(ex) == cell.conductance_names
    with pytest.raises(KeyError, match="no conductance 'g_X'"):
        stg.index("g_X")


def test_boxes_from_the_literature():
    stg = cells.get("stg")
    assert stg.box["g_Na"] == (0, 8000) and stg.box["g_H"] == (0, 0.7) and stg.box["g_leak"] == (0, 0.02)
    assert cells.get("da").fixed == {"g_NMDA": 0.012}


def test_register_a_new_cell_type():
    from condspace.cells import _template

    cell = cells.register(_template.CELL, "template")
    try:
        assert cells.get("template") is cell
        assert cell.channel_names[-1] == "leak"
    finally:
        cells._REGISTRY.pop(cell.name)
        cells._ALIASES.pop("template")
    with pytest.raises(TypeError):
        cells.register("not a cell")


def test_safe_exp_clips_and_keeps_the_imaginary_part():
    assert np.isfinite(safe_exp(np, np.array([1e4]))).all()
    z = safe_exp(np, np.array([1.0 + 1e-20j]))
    assert z.imag[0] == pytest.approx(np.e * 1e-20)
    assert sigmoid(np, np.array([-1e5]), 0.0, 1.0)[0] == 1.0
    # Large imaginary parts take the general complex exp, tiny ones the exact shortcut.
    big = np.array([1.0 + 0.5j, -3.0 + 2.0j])
    np.testing.assert_allclose(safe_exp(np, big), np.exp(big), rtol=1e-15)
    tiny = np.array([0.3 + 1e-20j])
    assert safe_exp(np, tiny)[0] == np.exp(tiny)[0]


def test_linear_over_expm1_is_continuous_and_exact_away_from_the_window():
    V = np.linspace(-39.0, -38.4, 20001)
    f = linear_over_expm1(np, V, -15.6504, -0.4043, -19.565, -0.5052)
    assert np.all(np.isfinite(f))
    assert np.max(np.abs(np.diff(f))) < 1e-2  # no jump at the window edges
    far = np.array([-55.5])
    direct = (-15.6504 - 0.4043 * far) / (np.exp(-19.565 - 0.5052 * far) - 1.0)
    assert linear_over_expm1(np, far, -15.6504, -0.4043, -19.565, -0.5052)[0] == pytest.approx(direct[0], rel=1e-14)
