#!/usr/bin/env bash
# Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d):
# creates one database per store, all owned by $POSTGRES_USER.
#   huleedu  the warehouse (HULEEDU_WAREHOUSE_URL)
#   dagster  Dagster runs, event logs, schedules and sensors (DAGSTER_POSTGRES_URL)
#   mlflow   MLflow tracking and model registry (mlflow server --backend-store-uri)
set -euo pipefail

DATABASES=(huleedu dagster mlflow)

for database in "${DATABASES[@]}"; do
  exists=$(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '${database}'")
  if [[ "$exists" != "1" ]]; then
    echo "init-databases: creating database ${database}"
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -c \
      "CREATE DATABASE \"${database}\" OWNER \"${POSTGRES_USER}\""
  fi
done
