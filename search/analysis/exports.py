"""What a search leaves behind: comparison.json, the best configs as `stacktune train` YAML, and the
report, written to the output folder and attached to the search run."""

from __future__ import annotations

import json
from pathlib import Path

from ..spec.convert import config_yaml
from ..spec.schema import TrainConfig
from .comparison import Comparison, DepthEntry


def publish(comparison: Comparison, out_dir: Path, *, client, search_id: str) -> None:
    """Writes comparison.json, the exports and the report, and attaches them to the search run."""
    from .report import write_report

    write_exports(comparison, out_dir)
    client.log_artifact(search_id, str(out_dir / "comparison.json"))
    for path in write_report(comparison.to_dict(), out_dir):
        client.log_artifact(search_id, str(path), artifact_path="report")


def write_exports(comparison: Comparison, out_dir: Path) -> list[Path]:
    """Writes comparison.json and best/depth-<d>.yaml plus best/overall.yaml; returns the config paths."""
    best_dir = out_dir / "best"
    best_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.json").write_text(json.dumps(comparison.to_dict(), indent=2) + "\n")
    written = []
    ranked = [d for d in comparison.depths if d.best_config is not None]
    for entry in ranked:
        path = best_dir / f"depth-{entry.depth}.yaml"
        path.write_text(_export_yaml(comparison, entry))
        written.append(path)
    if ranked:
        winner = min(ranked, key=lambda d: d.best_val_loss)
        path = best_dir / "overall.yaml"
        path.write_text(_export_yaml(comparison, winner))
        written.append(path)
    return written


def _export_yaml(comparison: Comparison, entry: DepthEntry) -> str:
    cfg = TrainConfig.model_validate(entry.best_config)
    cfg.metrics = {"val_loss": entry.best_val_loss, "params": entry.params}
    cfg.source = {
        "search": comparison.search,
        "depth": entry.depth,
        "trial": entry.best_trial["name"],
        "mlflow_run_id": entry.best_trial["mlflow_run_id"],
    }
    return config_yaml(cfg)
