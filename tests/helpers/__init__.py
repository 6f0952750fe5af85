"""
What the test suites share, importable as ``helpers`` (``pythonpath = ["tests"]`` in pyproject.toml's
``[tool.pytest.ini_options]``; no test edits ``sys.path``):

- :mod:`helpers.processes`: free loopback ports, waiting for a server's port, stopping a process
  by its pid;
- :mod:`helpers.airflow_harness`: real Airflow (2.11 or 3.x, from its own virtualenv) run against
  the lab as subprocesses;
- :mod:`helpers.dag_checks`: checks on what Airflow runs printed (no token, a task's output line)
  and the example DAGs as a real ``DagBag`` sees them;
- :mod:`helpers.services`: private PostgreSQL and Redis servers (Debian's packages);
- :mod:`helpers.celery_harness`: Airflow 3 with the CeleryExecutor, workers standing for hosts;
- :mod:`helpers.reliability_support`: the reliability suite's lab tasks, fault tools and token scans;
- :mod:`helpers.isolation`: unit tests kept away from the machine's AWS identity and Airflow settings.
- :mod:`helpers.fernet`: Airflow's own Fernet broken in this process as cryptography 51 breaks it on
  Airflow 2.11 to 3.1.

The DAG files under ``tests/**/dags`` run inside Airflow processes, where this package is not on the
path: they read the lab through the installed ``airflow_ecr_lab.load``.
"""
