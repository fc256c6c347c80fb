"""benchmarks/inference_ablation.py at a tiny size: the CSV chapter 2 reads, with its header."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def ablation(load_script):
    return load_script("benchmarks/inference_ablation.py")


def test_tiny_ablation_writes_every_variant_with_date_and_command(ablation, tiny_posterior_cache, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("CONDSPACE_CACHE", str(tiny_posterior_cache))
    out = tmp_path / "ablation.csv"
    argv = ["--sizes", "200", "--max-epochs", "2", "--n-test", "20", "--n-check", "3", "--n-samples", "50",
            "--out", str(out)]
    assert ablation.main(argv) == 0
    header = [line for line in out.read_text().splitlines() if line.startswith("# ")]
    assert header[0].startswith("# date: ") and "--sizes 200 --max-epochs 2" in header[1]
    assert header[2].startswith("# sizes: 200;") and "partial" not in header[2]
    table = pd.read_csv(out, comment="#")
    assert list(table["variant"]) == ["NSF, 2 flows, restriction", "NSF, 1 flow, restriction",
                                      "NSF, 2 flows, no restriction", "MAF, 2 flows, restriction"]
    assert list(table["flows"]) == [2, 1, 2, 2] and list(table["restriction"]) == [True, True, False, True]
    assert (table["n_train"] == 200).all() and (table["n_check"] == 3).all()
    predictive = [c for c in table if c.startswith("predictive_")]
    assert predictive == [f"predictive_{k}" for k in ("stg_tonic", "stg_bursting", "stg_bursting_dic",
                                                      "stg_irregular")]
    # A fraction of 3 simulated samples is k/3 (written to 4 decimals); a recording whose samples
    # could not be drawn is NaN, with the reason in "note".
    values = table[predictive].to_numpy(dtype=float).ravel()
    drawn = values[~np.isnan(values)]
    assert np.allclose(drawn * 3, np.round(drawn * 3), atol=1e-3)
    for _, row in table.iterrows():
        missing = [k.removeprefix("predictive_") for k in predictive if pd.isna(row[k])]
        assert all(f"{name}: " in str(row["note"]) for name in missing), row["note"]
    # --resume keeps what the file holds: with two rows gone, only the estimator they came from is
    # scored again, and the rows come back as they were.
    table.iloc[:2].to_csv(out, index=False)
    assert ablation.main([*argv, "--resume"]) == 0
    again = pd.read_csv(out, comment="#")
    pd.testing.assert_frame_equal(again.drop(columns=["train_or_load_s", "score_s"]).sort_values("variant")
                                  .reset_index(drop=True),
                                  table.drop(columns=["train_or_load_s", "score_s"]).sort_values("variant")
                                  .reset_index(drop=True))
    assert "(resumed" in out.read_text().splitlines()[1]


def test_bad_sizes_are_named(ablation, capsys):
    with pytest.raises(SystemExit):
        ablation.parse(["--sizes", "5k"])
    assert "--sizes must be comma-separated integers, got '5k'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ablation.parse(["--sizes", "1000", "--compare-at", "500"])
    assert "--compare-at 500 is not one of --sizes" in capsys.readouterr().err
