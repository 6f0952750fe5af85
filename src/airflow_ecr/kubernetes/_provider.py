"""
The cncf.kubernetes provider's classes airflow-ecr extends: the one module that imports them, so a
deployment without the provider gets one sentence naming the extra to install.
"""

from __future__ import annotations

try:
    from airflow.providers.cncf.kubernetes.decorators.kubernetes import _KubernetesDecoratedOperator
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
except ImportError as err:  # pragma: no cover - exercised by the matrix's cells without the provider
    raise ImportError(
        "airflow-ecr's Kubernetes support needs the cncf.kubernetes provider: pip install 'airflow-ecr[kubernetes]'."
    ) from err

__all__ = ["KubernetesHook", "KubernetesPodOperator", "_KubernetesDecoratedOperator"]
