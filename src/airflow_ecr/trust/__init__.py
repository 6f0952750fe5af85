"""
Run only what you trust: the image policy (``[ecr] image_policy``) checked on the exact digest that
will run, before a task starts.

- :mod:`~airflow_ecr.trust.outcome`: what a check found, as data (pure).
- :mod:`~airflow_ecr.trust.policy`: the policy file, its scopes and a DAG's tightening (pure).
- :mod:`~airflow_ecr.trust.scan`: ECR scan findings against a scan rule.
- :mod:`~airflow_ecr.trust.notation`: Notation signatures (trust policy, trust store, JWS and COSE).
- :mod:`~airflow_ecr.trust.cosign`: cosign signatures (a public key or an AWS KMS key).
- :mod:`~airflow_ecr.trust.referrers`: the signatures attached to a digest (the OCI referrers API,
  or its tag-schema fallback).
- :mod:`~airflow_ecr.trust.verdicts`: verdicts cached per digest on the host.
- :mod:`~airflow_ecr.trust.check`: the one entry point the hook calls.
"""
