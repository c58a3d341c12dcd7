"""What MLflow runs to rebuild a stacktune model (models from code: nothing is unpickled). See models.py."""

import mlflow.models

from stacktune.search.tracking.models import StackedLSTMPyfunc

mlflow.models.set_model(StackedLSTMPyfunc())
