"""
``docker-credential-airflow-ecr``: Docker's credential-helper protocol on airflow-ecr's host cache.

Docker (the CLI, compose, the docker-py client under ``DockerOperator``) runs
``docker-credential-airflow-ecr get`` for each registry listed under ``credHelpers`` in its
``config.json``; ``airflow-ecr configure-docker`` writes those entries. One module per job:

- :mod:`~airflow_ecr.credential_helper.protocol`: the console script; reads the action and the
  server URL, answers in the protocol's JSON or its error texts. Imports no Airflow.
- :mod:`~airflow_ecr.credential_helper.index`: the warm path. Which record of the host cache answers
  this process's identity and host, read without Airflow.
- :mod:`~airflow_ecr.credential_helper.cold`: the cold path. Airflow's configuration, the AWS connection,
  :class:`~airflow_ecr.tokens.cache.TokenCache` (single flight, identity keying, refresh policy,
  throttling retries: those of every other mode), then the index record for the next warm ``get``.
- :mod:`~airflow_ecr.credential_helper.docker_config`: ``configure-docker``'s merge of ``credHelpers``.
"""
