"""Publishing a search's results: the summary read from the studies (with each depth's best logged to MLflow as a
model), the report, the plots, and the exported files and artifacts, all rendering the typed `Comparison`.

Its floor is beside the evaluation stage, above the verdict: it imports `verdict`, `engine`, `tracking` and
`spec`, never `evaluation`, `pipeline` or `interfaces`.
"""
