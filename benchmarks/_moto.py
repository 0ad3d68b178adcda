"""moto's Step Functions interpreter (LocalStack's ASL parser), the ASL baseline.

``mock_aws(config={"stepfunctions": {"execute_state_machine": True}})`` makes
moto really execute state machines (each execution on a thread of its own)
instead of returning canned results. We drive it the way a client would:
boto3 ``create_state_machine``, ``start_execution``, then ``describe_execution``
until the status leaves RUNNING. Nothing is durable here: moto keeps
executions in memory.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

from . import _asl_cases
from ._common import Metrics, Params, Skipped

_ROLE = "arn:aws:iam::123456789012:role/wayline-bench"


def _client() -> tuple[Any, Any]:
    try:
        import boto3
        from moto import mock_aws
    except ImportError as exc:
        raise Skipped("moto") from exc
    # Fixed fake values: moto's mock never talks to AWS, but botocore wants
    # something to sign with and a region.
    for key, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ[key] = value
    mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
    return boto3, mock


def _version() -> str:
    import importlib.metadata

    return f"moto {importlib.metadata.version('moto')}, in-memory"


_started = 0


def _run_one(sfn: Any, arn: str, payload: Any, timeout_s: float = 30.0) -> str:
    global _started
    _started += 1  # moto names every unnamed execution "None": name them ourselves
    execution = sfn.start_execution(stateMachineArn=arn, name=f"e{_started}", input=json.dumps(payload))
    deadline = time.perf_counter() + timeout_s
    while True:
        status: str = sfn.describe_execution(executionArn=execution["executionArn"])["status"]
        if status != "RUNNING":
            return status
        if time.perf_counter() > deadline:
            raise TimeoutError(f"moto execution still RUNNING after {timeout_s:.0f}s")
        time.sleep(0.0002)


async def conformance(params: Params) -> Metrics:
    """Executions/s over the conformance cases; definitions moto rejects are counted."""
    boto3, mock = _client()
    cases, waits = _asl_cases.load_cases(int(params["cases"]), int(params["seed"]))
    with mock:
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arns: list[tuple[str, Any, str]] = []
        rejected = 0
        for i, case in enumerate(cases):
            try:
                arn = sfn.create_state_machine(name=f"case{i}", definition=json.dumps(case.definition), roleArn=_ROLE)[
                    "stateMachineArn"
                ]
            except Exception:
                rejected += 1
                continue
            arns.append((arn, case.input, case.expected_status))
        if not arns:
            raise RuntimeError("moto rejected every case definition")
        statuses: dict[str, int] = {}
        matched = 0
        t0 = time.perf_counter()
        for arn, payload, expected in arns:
            status = _run_one(sfn, arn, payload)
            statuses[status] = statuses.get(status, 0) + 1
            matched += status == expected
        elapsed = time.perf_counter() - t0
    shown = ", ".join(f"{v} {k}" for k, v in sorted(statuses.items()))
    return {
        "executions_per_s": len(arns) / elapsed,
        "executions": len(arns),
        "rejected_definitions": rejected,
        "status_matches_aws": matched,
        "note": (
            f"{_version()}; {len(arns)} cases run ({shown}; status as on AWS: {matched}), "
            f"{rejected} definitions rejected (excluded), {waits} Wait cases left out"
        ),
    }


async def ten_states(params: Params) -> Metrics:
    """E executions of the 10-state Pass machine, one after another."""
    boto3, mock = _client()
    executions = int(params["executions"])
    rng = random.Random(params["seed"])
    with mock:
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(name="ten", definition=json.dumps(_asl_cases.ten_states()), roleArn=_ROLE)[
            "stateMachineArn"
        ]
        t0 = time.perf_counter()
        for _ in range(executions):
            status = _run_one(sfn, arn, {"input": rng.randrange(1 << 30)})
            if status != "SUCCEEDED":
                raise RuntimeError(f"10-state machine ended {status} on moto")
        elapsed = time.perf_counter() - t0
    return {
        "executions_per_s": executions / elapsed,
        "transitions_per_s": executions * 10 / elapsed,
        "seconds": elapsed,
        # Sequential: faster on moto than starting all at once (a thread per execution).
        "note": f"{_version()}; sequential executions",
    }
