"""Schemathesis over a whole OpenAPI document: the one fuzzing loop of the test suites.

`fuzz_operations(schema, examples=...)` sends every operation of a loaded schema
generated requests, first valid ones (positive mode), then invalid ones (negative
mode), and runs the checks on every response: by default no 5xx, no status code and
no media type the schema does not document, and no body that contradicts the schema
documented for its status code and media type (every service documents its
problem+json answers through `tollgate.kit.problems.PROBLEM_RESPONSES`). It returns a
`FuzzReport` rather than raising, so each test states its own assertions.

What stays in the test: loading the schema (in process with
`schemathesis.openapi.from_asgi`, or `from_url` against a running service), seeding
the rows that `known_path_parameters` name, tokens, and any per-call signing
(`call_kwargs`).

Test-only: this module imports schemathesis (the `testing` extra), so service code
never imports it, and `tollgate.kit.testing` does not re-export it (the pytest
plugin would then load schemathesis into every test run).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, BaseSchema, Case, CheckFunction, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core import NotSet
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err

Operation = APIOperation[Any, Any, Any, Any]
AnyCase = Case[Any]

DEFAULT_CHECKS: tuple[CheckFunction, ...] = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
)

CallKwargs = Callable[[AnyCase], Mapping[str, Any]]
"""Per-case keyword arguments for `Case.call` (`headers`, `data`, ...); a `headers`
entry replaces the run's headers. The hook may also adjust the case before it is sent."""


@dataclass
class FuzzReport:
    """What a run did: operations covered, requests sent, one entry per distinct failure."""

    operations: int = 0
    calls: int = 0
    failures: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.operations} operations, {self.calls} calls, {len(self.failures)} failures"


def deletes_last(operation: Operation) -> bool:
    """Sort key running DELETE operations after the others, so rows named by known path
    parameters are still there for every other operation."""
    return operation.method.upper() == "DELETE"


def fuzz_operations(
    schema: BaseSchema,
    *,
    examples: int,
    checks: Sequence[CheckFunction] = DEFAULT_CHECKS,
    headers: Mapping[str, str] | None = None,
    call_kwargs: CallKwargs | None = None,
    known_path_parameters: Mapping[str, str] | None = None,
    order: Callable[[Operation], Any] = deletes_last,
) -> FuzzReport:
    """Run every operation of `schema` with up to `examples` generated cases per mode.

    `headers` go with every call (a token). `known_path_parameters` (name -> value of
    an existing row) replace generated path parameters in every other positive case,
    the first included, so handlers behind a 404 are reached and the 404 itself still
    is. `order` is a sort key over the operations (stable; DELETEs last by default).
    """
    report = FuzzReport()
    run = _Run(report, list(checks), dict(headers or {}), call_kwargs, known_path_parameters or {})
    operations = sorted(_operations(schema), key=order)
    for operation in operations:
        report.operations += 1
        run.mode(operation, GenerationMode.POSITIVE, examples)
        if any(operation.iter_parameters()) or operation.body:
            # Unsatisfiable: no input of this operation can be made invalid.
            with contextlib.suppress(Unsatisfiable):
                run.mode(operation, GenerationMode.NEGATIVE, examples)
    return report


def _operations(schema: BaseSchema) -> list[Operation]:
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operations.append(result.ok())
    return operations


@dataclass
class _Run:
    report: FuzzReport
    checks: list[CheckFunction]
    headers: dict[str, str]
    call_kwargs: CallKwargs | None
    known: Mapping[str, str]

    def mode(self, operation: Operation, mode: GenerationMode, examples: int) -> None:
        """Up to `examples` cases of `operation` in `mode`, failures recorded."""
        sent = 0

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def probe(case: AnyCase) -> None:
            nonlocal sent
            if mode is GenerationMode.POSITIVE and sent % 2 == 0 and case.path_parameters:
                case.path_parameters = {
                    name: self.known.get(name, value)
                    for name, value in case.path_parameters.items()
                }
            sent += 1
            self.report.calls += 1
            kwargs: dict[str, Any] = {"headers": dict(self.headers)}
            if self.call_kwargs is not None:
                kwargs.update(self.call_kwargs(case))
            try:
                case.call_and_validate(checks=self.checks, **kwargs)
            except FailureGroup as failure:  # carries the response and a curl command
                self._fail(case, mode, failure.message)
            except Exception as error:  # no response at all (connection reset, say)
                inputs = f"query={case.query!r}"
                if not isinstance(case.body, NotSet):
                    inputs += f" body={case.body!r}"
                self._fail(case, mode, f"{error!r} ({inputs})")

        probe()

    def _fail(self, case: AnyCase, mode: GenerationMode, detail: str) -> None:
        failure = f"[{mode.value}] {case.method} {case.formatted_path}: {detail.strip()}"
        if failure not in self.report.failures:  # a known id repeats the same request
            self.report.failures.append(failure)
