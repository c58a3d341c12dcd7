"""The example search specs and training configs, shipped as package data: `stacktune init` writes one out."""
