"""
Obtain, cache and refresh ECR authorization tokens.

One job per module:

- :mod:`~airflow_ecr.tokens.token`: the token and ECR's ``authorizationData`` parsing;
- :mod:`~airflow_ecr.tokens.policy`: when a token is refreshed, handed out or stored (the refresh policy);
- :mod:`~airflow_ecr.tokens.sources`: the one class that calls ``GetAuthorizationToken``;
- :mod:`~airflow_ecr.tokens.aws_errors`: what a failed AWS call means (an
  :class:`~airflow_ecr.aws_failure.AwsFailure`, below this package), and how it reads;
- :mod:`~airflow_ecr.tokens.store`: where tokens are kept (memory, host files, nowhere);
- :mod:`~airflow_ecr.tokens.cache`: lookups over the stores, with single flight and the stale fallback.
"""
