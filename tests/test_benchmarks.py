"""The benchmark harness runs end to end at tiny sizes (no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import harness

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_writes_both_tables(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "fit", "--output", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    assert "**Speed**" in result.stdout and "**Quality**" in result.stdout
    results = json.loads((tmp_path / "cpu.json").read_text())
    rows = results["speed"]
    assert rows and rows[0]["operation"].startswith("train.fit")
    assert rows[0]["ours_ms"] > 0 and rows[0]["peer_ms"] > 0 and rows[0]["ratio"] > 0
    assert results["quick"] is True and results["machine"]["torch"] == torch.__version__
    assert (tmp_path / "cpu.md").read_text().startswith("Measured on")
    subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "load_dates", "--merge",
         "--output", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    merged = [row["operation"] for row in json.loads((tmp_path / "cpu.json").read_text())["speed"]]
    assert merged == [rows[0]["operation"], "load_dates"], merged


def test_rows_are_registered_and_rendered():
    registered = []

    @harness.speed_row("toy op", peer="torch.add", target="<= 2x")
    def toy(device, quick):
        a = torch.ones(4)
        yield harness.SpeedCase("N=4", ours=lambda: a + a, peer=lambda: torch.add(a, a))

    @harness.quality_row("demo", "toy model")
    def toy_quality(device, quick):
        registered.append(quick)
        return [harness.Measure("accuracy", 0.9, bar=">= 0.95"), harness.Measure("loss", 1.0)]

    try:
        results = harness.run_all(torch.device("cpu"), quick=True, only="toy", log=lambda _: None)
    finally:
        del harness._ROWS[-2:]
    assert registered == [True]
    speed, quality = results["speed"], results["quality"]
    assert speed[0]["max_abs_diff"] == 0.0 and speed[0]["target"] == "<= 2x"
    assert [q["passed"] for q in quality] == [False, None]
    table = harness.render_markdown(results)
    assert "| toy op | N=4 | cpu |" in table and "**no**" in table


def test_max_difference():
    assert harness.max_difference(torch.ones(2), torch.zeros(2)) == 1.0
    assert harness.max_difference((torch.ones(1), 2.0), (torch.ones(1), 2.5)) == 0.5
    assert harness.max_difference(torch.ones(2), torch.ones(3)) == float("inf")
    assert harness.max_difference("a", "b") is None


def test_committed_results_exist_for_the_appendix():
    for name in ["cpu.md", "cuda.md"]:
        assert (ROOT / "benchmarks" / "results" / name).exists()


def _result(quick, speed, quality):
    return {"machine": {"date": "d"}, "quick": quick,
            "speed": [{"operation": op, "size": size} for op, size in speed],
            "quality": [{"model": model, "value": value} for model, value in quality]}  # fmt: skip


def test_merge_replaces_only_the_rerun_rows():
    old = _result(False, [("box_iou", "N=1"), ("nms", "N=1"), ("nms", "N=2")],
                  [("LSTM LM", 2.1), ("ViT", 0.9)])  # fmt: skip
    new = _result(False, [("nms", "N=5"), ("nms fast", "N=1")], [])
    merged = harness.merge_results(old, new, "nms")
    assert [(r["operation"], r["size"]) for r in merged["speed"]] == [
        ("box_iou", "N=1"), ("nms", "N=5"), ("nms fast", "N=1")]  # fmt: skip
    assert merged["quality"] == old["quality"]
    merged = harness.merge_results(old, _result(False, [], [("LSTM LM", 1.9)]), "lstm")
    assert [r["value"] for r in merged["quality"]] == [1.9, 0.9]
    with pytest.raises(ValueError, match="quick"):
        harness.merge_results(old, _result(True, [], []), "nms")
