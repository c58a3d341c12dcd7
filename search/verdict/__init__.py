"""The verdict: which depths may be best, whether depth helps, what tuning changed, and whether any of it beats the
naive forecast, as pure functions of the figures (and, for the naive baselines and the diagnostics, of the prepared
data), with `comparison` the typed comparison.json they fill in.

No module here touches MLflow, Ray, Optuna or a file: it imports only itself, `spec` and the lowest floor
(`errors`, `contracts`, `progress`). The evaluation stage and publishing, on the floor above, import it.
"""
