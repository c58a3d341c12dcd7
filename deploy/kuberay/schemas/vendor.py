"""Writes raycluster.json and rayjob.json from a KubeRay checkout: the openAPIV3Schema of each CRD's v1 version.

    git clone --depth 1 --branch v1.7.0 https://github.com/ray-project/kuberay /tmp/kuberay
    python deploy/kuberay/schemas/vendor.py /tmp/kuberay

Nothing else is taken from the CRDs (their other versions, printer columns and names stay behind); the schema
itself is copied whole, as compact JSON. Update NOTICE with the tag and commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CRDS = {"raycluster.json": "ray.io_rayclusters.yaml", "rayjob.json": "ray.io_rayjobs.yaml"}


def v1_schema(crd_path: Path) -> dict:
    crd = yaml.safe_load(crd_path.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1" and v["served"]]
    return version["schema"]["openAPIV3Schema"]


def main(checkout: str) -> None:
    bases = Path(checkout) / "ray-operator" / "config" / "crd" / "bases"
    for out, crd in CRDS.items():
        text = json.dumps(v1_schema(bases / crd), sort_keys=True, separators=(",", ":"))
        (HERE / out).write_text(text + "\n")
        print(f"{out}: {len(text)} characters from {crd}")


if __name__ == "__main__":
    main(sys.argv[1])
