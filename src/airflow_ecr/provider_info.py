"""Provider metadata, read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_ecr import __version__, settings
from airflow_ecr.tokens.policy import ECR_TOKEN_LIFE

# ECR's token life, and when the default refresh_ratio refreshes it, in hours (the options' descriptions).
_TOKEN_HOURS = ECR_TOKEN_LIFE / 3600
_REFRESH_HOURS = settings.DEFAULT_REFRESH_RATIO * _TOKEN_HOURS
# Kept here rather than imported from the hook: provider discovery must not import docker-py.
ECR_CONNECTION_FIELDS = {
    "aws_conn_id": "AWS connection id",
    "region_name": "Registry region (of the alias host)",
    "registry_id": "Registry id (of the alias host)",
    "registry_ids": "More registry ids (comma separated)",
    "fallback_regions": "Fallback regions: replicas, in order (comma separated)",
}
# The host is shown: an ecr_docker connection with a host declares it an alias of the registry its
# registry_id and region_name name (a value only the connection's editors control).
ECR_CONNECTION_HIDDEN_FIELDS = ("schema", "login", "password", "port", "extra")
ECR_CONNECTION_RELABELING = {"host": "Alias host (optional, with registry id and region)"}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider's hooks, operators, task decorator and configuration to Airflow."""
    return {
        "package-name": "airflow-ecr",
        "name": "Amazon ECR for Docker",
        "description": "Run Amazon ECR images with Airflow's Docker operators; ECR credentials are "
        "obtained, cached and refreshed automatically.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Amazon ECR for Docker",
                "external-doc-url": "https://docs.aws.amazon.com/AmazonECR/latest/userguide/",
                "tags": ["aws", "software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Amazon ECR for Docker",
                "python-modules": ["airflow_ecr.operators.docker", "airflow_ecr.operators.credentials"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Amazon ECR for Docker",
                "python-modules": ["airflow_ecr.hooks.docker"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_ecr.doctor.connection.EcrDockerConnectionHook",
                "connection-type": "ecr_docker",
                "hook-name": "Docker (Amazon ECR)",
                "conn-fields": {
                    name: {"label": label, "schema": {"type": ["string", "null"]}}
                    for name, label in ECR_CONNECTION_FIELDS.items()
                },
                "ui-field-behaviour": {
                    "hidden-fields": list(ECR_CONNECTION_HIDDEN_FIELDS),
                    "relabeling": dict(ECR_CONNECTION_RELABELING),
                },
            }
        ],
        "task-decorators": [
            {"class-name": "airflow_ecr.decorators.docker.ecr_docker_task", "name": "ecr_docker"},
            # Needs the cncf.kubernetes provider (the `kubernetes` extra); imported only when used.
            {"class-name": "airflow_ecr.decorators.kubernetes.ecr_kubernetes_task", "name": "ecr_kubernetes"},
        ],
        # Listed by `airflow providers secrets`; still enabled only through [secrets] backend.
        "secrets-backends": ["airflow_ecr.secrets.ecr.EcrDockerConnectionBackend"],
        "config": {
            "ecr": {
                "description": "Caching of Amazon ECR tokens by airflow-ecr.",
                "options": {
                    "cache_enabled": {
                        "description": "Share tokens between the task processes of a host through a "
                        "private file cache. When off, each process fetches its own tokens.",
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": None,
                        "default": str(settings.DEFAULT_CACHE_ENABLED),
                    },
                    "cache_dir": {
                        "description": "Directory of the host token cache (created 0700). Empty means "
                        "$XDG_CACHE_HOME/airflow-ecr or ~/.cache/airflow-ecr.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/var/cache/airflow-ecr",
                        "default": "",
                    },
                    "refresh_ratio": {
                        "description": "Fraction of a token's life after which it is refreshed "
                        f"(ECR tokens live {_TOKEN_HOURS:g} hours; {settings.DEFAULT_REFRESH_RATIO:g} refreshes after "
                        f"{_REFRESH_HOURS:g}).",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": None,
                        "default": f"{settings.DEFAULT_REFRESH_RATIO:g}",
                    },
                    "lock_timeout": {
                        "description": "Seconds a process waits for another process of the host that "
                        "is already fetching a token, before fetching one itself.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": None,
                        "default": f"{settings.DEFAULT_LOCK_TIMEOUT:g}",
                    },
                    "refresh_jitter": {
                        "description": "Fraction of the refresh age by which a host may refresh a token "
                        "early, drawn once per token, so that hosts whose tokens were fetched together do "
                        f"not all refresh in the same second ({settings.DEFAULT_REFRESH_JITTER:g} with the "
                        "default refresh_ratio: between "
                        f"{_REFRESH_HOURS * (1 - settings.DEFAULT_REFRESH_JITTER):g} and "
                        f"{_REFRESH_HOURS:g} hours). 0 refreshes at refresh_ratio exactly.",
                        "version_added": "0.2.0",
                        "type": "float",
                        "example": None,
                        "default": f"{settings.DEFAULT_REFRESH_JITTER:g}",
                    },
                    "token_retry_mode": {
                        "description": "botocore retry mode of the GetAuthorizationToken call: standard "
                        "(exponential backoff with full jitter) or adaptive (the same, plus client-side rate "
                        "limiting). An AWS connection whose extra has config_kwargs with retries uses those "
                        "instead.",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "adaptive",
                        "default": settings.DEFAULT_TOKEN_RETRY_MODE,
                    },
                    "token_max_attempts": {
                        "description": "Attempts of a throttled or failing GetAuthorizationToken call, the "
                        "first included (1 to 30). ECR allows 200 calls at once per account and region, "
                        "then 20 per second; the waits between attempts are botocore's, up to 1, 2, 4, 8, "
                        f"16, then 20 s each: {settings.DEFAULT_TOKEN_MAX_ATTEMPTS} attempts wait "
                        f"{settings.token_retry_wait_bound(settings.DEFAULT_TOKEN_MAX_ATTEMPTS):g} s at most "
                        "in all. Keep that below lock_timeout. An AWS connection whose extra has "
                        "config_kwargs with retries uses those instead.",
                        "version_added": "0.2.0",
                        "type": "integer",
                        "example": None,
                        "default": str(settings.DEFAULT_TOKEN_MAX_ATTEMPTS),
                    },
                    "registry_aliases": {
                        "description": "Non-ECR registry hosts (DNS aliases, proxies in front of ECR) that "
                        "may receive the token of an ECR registry, as 'host=<12-digit account id>:<region>' "
                        "entries separated by commas. An image on any other non-ECR host is refused before a "
                        "token is fetched; registry_id and region_name arguments do not declare an alias. "
                        "An ecr_docker connection with a host, registry_id and region_name declares one too.",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "registry.example.com=123456789012:us-east-1",
                        "default": "",
                    },
                    "pull_through_cache": {
                        "description": "Upstream registries served through ECR pull-through cache rules, as "
                        "'upstream=<ECR registry host>/<rule prefix>' entries separated by commas or newlines. "
                        "The ECR Docker operators, @task.ecr_docker, the pin operator and Kubernetes pods "
                        "(EcrKubernetesPodOperator, @task.ecr_kubernetes, the pod mutation hook) "
                        "pull an image of such an upstream by its cache name instead, tag and digest kept: "
                        "with 'docker.io=123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub', busybox:1.36 "
                        "is pulled as 123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub/library/busybox:1.36 "
                        "(Docker Hub's official images gain their implicit library/). Images of other registries "
                        "are left alone. The first pull of an image through a rule needs "
                        "ecr:BatchImportUpstreamImage and ecr:CreateRepository besides the pull permissions. "
                        "Set it where DAGs are parsed too: an image with no template is checked there.",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "docker.io=123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub, "
                        "ghcr.io=123456789012.dkr.ecr.eu-west-1.amazonaws.com/ghcr",
                        "default": "",
                    },
                    "image_policy": {
                        "description": "Path of the image policy file (JSON, see the image policy page): per "
                        "host/repository scope, the scan findings and signatures the exact digest must pass "
                        "before a task starts. The first rule whose scope matches an image applies; an image "
                        "no rule matches has no policy. A DAG's image_policy argument may tighten the rule, "
                        "never loosen it. Read at first use and again when the file changes; a malformed file "
                        "fails the tasks that consult it, with one sentence naming the rule and field. "
                        "Empty: no policy.",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "/etc/airflow/image-policy.json",
                        "default": "",
                    },
                    "aws_conn_id": {
                        "description": "The AWS connection of the modes no DAG argument reaches: the "
                        "Kubernetes pod mutation hook (airflow_ecr.kubernetes.pod_mutation_hook). Empty: "
                        "boto3's default credential chain.",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": None,
                        "default": settings.DEFAULT_AWS_CONN_ID,
                    },
                    "identity_recheck": {
                        "description": "Seconds a task process trusts the host cache's record of which AWS "
                        "identity an aws_conn_id resolved to, instead of reading the connection (a warm "
                        "lookup reads no connection). Records are kept apart per deployment, team, "
                        "connection origin and environment credentials; within one of them, a connection "
                        "repointed to another role may still be served the old role's token this long. "
                        "A fetch always reads the connection. 0 reads the connection in every task process "
                        "(at most a day). A new value applies to records written after it.",
                        "version_added": "0.2.0",
                        "type": "float",
                        "example": "60",
                        "default": f"{settings.DEFAULT_IDENTITY_RECHECK:g}",
                    },
                    "require_aws_connection": {
                        "description": "Whether an aws_conn_id that names no Airflow connection fails the "
                        "task. When False, as in the amazon provider, boto3's default credential chain "
                        "(environment, profile, container or instance role) is used, with a warning "
                        "naming the id and the credentials used instead.",
                        "version_added": "0.2.0",
                        "type": "boolean",
                        "example": None,
                        "default": str(settings.DEFAULT_REQUIRE_AWS_CONNECTION),
                    },
                },
            }
        },
    }
