"""Secrets backends of airflow-ecr (see :mod:`airflow_ecr.secrets.ecr`)."""
