"""What ``context["ti"]`` offers an operator that in-process tests execute: ``xcom_push``, recorded."""

from __future__ import annotations

import json
from typing import Any


class RecordingTI:
    """Keeps every XCom an operator pushes; refuses values that are not JSON-serialisable, as XCom does."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)
        self.xcom[key] = value
