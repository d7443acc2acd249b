"""The Functions host's side of the custom-handler protocol, for the load tools (`scripts/soak.py`,
`scripts/bench.py`): a `ScoreWindows` invocation as the host sends it for an Event Hubs trigger
with `cardinality: many` and `dataType: string` (the Rust twin for tests is
`ingress::host::many_string_invocation`)."""
from __future__ import annotations

import json
from datetime import datetime, timezone


def _encode(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def invocation(bodies: list, first_sequence: int, partition: str = "0",
               namespace: str = "local.servicebus.windows.net") -> str:
    """The request body: the event bodies as one JSON-encoded array of strings in `Data.events`
    (so each body is encoded twice, as the host does), the per-event metadata as JSON-encoded
    arrays, and the `RetryContext` of a first attempt under a retry-for-ever policy."""
    n = len(bodies)
    seq = list(range(first_sequence, first_sequence + n))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return _encode({
        "Data": {"events": _encode(bodies)},
        "Metadata": {
            "PartitionContext": {"FullyQualifiedNamespace": namespace,
                                 "EventHubName": "windows", "ConsumerGroup": "$Default",
                                 "PartitionId": partition},
            "SequenceNumberArray": _encode(seq),
            "OffsetArray": _encode([str(s * 512) for s in seq]),
            "EnqueuedTimeUtcArray": _encode([now] * n),
            "sys": {"MethodName": "ScoreWindows", "UtcNow": now,
                    "RandGuid": "00000000-0000-0000-0000-000000000000"},
            "RetryContext": {"RetryCount": 0, "MaxRetryCount": -1, "Exception": None,
                             "Instance": None, "State": {}},
        },
    })
