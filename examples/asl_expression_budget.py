"""A runaway JSONata expression fails its state; other runs keep their pace meanwhile.

Run it with ``python examples/asl_expression_budget.py``. One state machine evaluates an
expression that never ends (a loop written as tail recursion) under a 2-second budget;
while it does, another run takes five 0.1 s naps, and the script prints how long they took
beside the runaway expression and alone, then the runaway run's error.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from wayline import RunFailed, StateMachine, open_runtime
from wayline.runtime import ExpressionBudget

RUNAWAY = {
    "QueryLanguage": "JSONata",
    "StartAt": "Summarise",
    "States": {
        "Summarise": {
            "Type": "Pass",
            # Never returns: only the budget stops it.
            "Output": "{% ($loop := function($n){ $loop($n + 1) }; $loop(0)) %}",
            "End": True,
        }
    },
}


async def nap(payload: Any) -> Any:
    await asyncio.sleep(0.1)
    return payload


NAPS: dict[str, Any] = {
    "StartAt": "Nap0",
    "States": {f"Nap{i}": {"Type": "Task", "Resource": "nap", "Next": f"Nap{i + 1}"} for i in range(4)}
    | {"Nap4": {"Type": "Task", "Resource": "nap", "End": True}},
}


async def main() -> None:
    runaway = StateMachine(RUNAWAY, name="runaway", expression_budget=ExpressionBudget(seconds=2))
    napper = StateMachine(NAPS, name="napper", resources={"nap": nap})
    with tempfile.TemporaryDirectory() as tmp:
        async with open_runtime(Path(tmp) / "budget.db", workflows=[runaway, napper]) as rt:
            started = time.perf_counter()
            await (await rt.start(napper, {})).result()
            alone = time.perf_counter() - started

            spinning = await rt.start(runaway, {})
            await asyncio.sleep(0.05)  # let it get going
            started = time.perf_counter()
            await (await rt.start(napper, {})).result()
            beside = time.perf_counter() - started
            print(f"five 0.1 s naps: {alone:.2f} s alone, {beside:.2f} s beside a runaway expression")
            try:
                await spinning.result()
            except RunFailed as exc:
                print(f"the runaway run failed with {exc.error}:")
                print(f"  {exc.cause}")


if __name__ == "__main__":
    asyncio.run(main())
