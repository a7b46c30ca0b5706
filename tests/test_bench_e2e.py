"""``focalrig bench e2e``: the product path on the simulated rig, scored against its truth, row by row."""

import json

from rich.console import Console
from typer.testing import CliRunner

from app.bench.e2e import FRAMES_ONLY, ORACLE_AVERAGE, ORACLE_SINGLE, REGIMES, SINGLE_FRAME, run_e2e_benchmark
from app.cli import app


def test_help_names_every_regime():
    result = CliRunner().invoke(app, ["bench", "e2e", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in REGIMES:
        assert name in result.output


def test_default_rig_scores_against_truth_with_oracles_and_ablations(tmp_path):
    console = Console(width=240, record=True)
    out = tmp_path / "e2e.json"
    summary = run_e2e_benchmark(console, regimes=["default"], seeds=1, sweeps=1, methods=["classical"], planes=8,
                                keep=tmp_path / "work", json_path=out)
    rows = {s["method"]: s for s in summary}
    assert set(rows) == {"classical", "classical" + FRAMES_ONLY, "classical" + SINGLE_FRAME, ORACLE_SINGLE,
                         ORACLE_AVERAGE}
    full, single = rows["classical"], rows["classical" + SINGLE_FRAME]
    # A calibrated recording fuses close to what its own frames allow; a wrong lag, geometry or plane choice
    # costs several dB against the oracle that reads the same frames with the truth in hand.
    assert full["psnr"] > rows[ORACLE_SINGLE]["psnr"] - 2.0
    assert full["depth_median_dpt"] < 0.05
    # One exposure cannot restore what a full stack sees (static scene, default threshold).
    assert single["luma_psnr"] < full["luma_psnr"] - 2.0
    assert full["stack_s"] > 0 and full["fuse_s"] > 0
    saved = json.loads(out.read_text())
    assert len(saved["rows"]) == 5 and saved["regimes"]["default"]["name"] == "default"
    # The calibration and the recording are kept for a second look.
    assert (tmp_path / "work" / "default" / "calibration.json").is_file()
    assert "oracle: near-best average" in console.export_text()
