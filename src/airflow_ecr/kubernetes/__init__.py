"""
ECR images in Kubernetes pods: a short-lived ``kubernetes.io/dockerconfigjson`` Secret per pod, from
the same host token cache as every other mode.

- :class:`airflow_ecr.operators.kubernetes.EcrKubernetesPodOperator` (and ``@task.ecr_kubernetes``)
  for new DAGs;
- :func:`pod_mutation_hook` for a deployment's ``airflow_local_settings.py``: every pod that
  ``KubernetesPodOperator`` or ``@task.kubernetes`` launches gets the same, with no DAG edited.

Importing this package loads neither Kubernetes nor the cncf.kubernetes provider.
"""

from __future__ import annotations

from typing import Any


def pod_mutation_hook(pod: Any) -> None:
    """
    Airflow's pod mutation hook: give a pod that ``KubernetesPodOperator`` is about to launch a pull
    secret for its ECR images (see :func:`airflow_ecr.kubernetes.mutation.add_pull_secret`).

    In ``airflow_local_settings.py``::

        from airflow_ecr.kubernetes import pod_mutation_hook

    or, to chain it with a hook the deployment already has::

        from airflow_ecr.kubernetes import pod_mutation_hook as ecr_pull_secrets

        def pod_mutation_hook(pod):
            my_existing_hook(pod)
            ecr_pull_secrets(pod)

    :param pod: the ``V1Pod`` to be created (changed in place).
    """
    from airflow_ecr.kubernetes.mutation import add_pull_secret

    add_pull_secret(pod)
