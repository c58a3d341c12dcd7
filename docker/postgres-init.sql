-- The compose cluster's PostgreSQL holds MLflow's runs (database "mlflow", made by the image)
-- and the Optuna studies (database "optuna").
CREATE DATABASE optuna;
