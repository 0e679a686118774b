"""Schemathesis over a whole OpenAPI document: the one fuzzing loop of the test suites.

`fuzz_operations(schema, examples=...)` sends every operation of a loaded schema the
requests `st run --checks all` would: the coverage phase's deterministic boundary
cases (missing required headers, unexpected methods, each constraint just inside and
just outside), then generated valid ones (positive mode) and invalid ones (negative
mode), then, when the document has links (declared or inferred by schemathesis),
stateful scenarios that chain operations (create, then use, then delete and use
again). Every response goes through every schemathesis check (`ALL_CHECKS`): no 5xx;
status code, media type, headers and body as documented (every service documents its
problem+json answers through `tollgate.kit.problems.PROBLEM_RESPONSES`); valid data
accepted and invalid data rejected; a missing required header refused; 405 with
`Allow` for undocumented methods; auth not ignored; and, in scenarios, no resource
still served after its DELETE (use-after-free) and none missing right after its
creation (ensure-resource-availability). It returns a `FuzzReport` rather than
raising, so each test states its own assertions.

What stays in the test: loading the schema (in process with
`schemathesis.openapi.from_asgi`, or `from_url` against a running service), seeding
the rows that `known_path_parameters` name, tokens, and any per-call signing
(`call_kwargs`).

Test-only: this module imports schemathesis (the `testing` extra), so service code
never imports it, and `tollgate.kit.testing` does not re-export it (the pytest
plugin would then load schemathesis into every test run).
"""

from __future__ import annotations

import _weakrefset
import contextlib
import signal
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, BaseSchema, Case, CheckFunction, GenerationMode
from schemathesis.checks import CHECKS, is_check_class, load_all_checks
from schemathesis.core import NotSet
from schemathesis.core.errors import NoLinksFound
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Err
from schemathesis.generation.stateful import run_state_machine_as_test
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy.ext.asyncio import create_async_engine

from tollgate.kit.db import session_maker

Operation = APIOperation[Any, Any, Any, Any]
AnyCase = Case[Any]


def _all_checks() -> tuple[CheckFunction, ...]:
    load_all_checks()
    # Class-based (after-run) checks would need the engine; all built-ins are functions.
    return tuple(check for check in CHECKS.get_all() if not is_check_class(check))


ALL_CHECKS: tuple[CheckFunction, ...] = _all_checks()
"""Every check schemathesis registers: what `st run --checks all` runs."""
DEFAULT_CHECKS = ALL_CHECKS

SemanticRules = Mapping[str, str]
"""`"METHOD /path/{template}"` -> the rule of that operation a JSON Schema cannot state
(a regex must compile on RE2, a cursor must be one the API issued, two fields must
agree). Data the schema allows can break such a rule, and the refusal is right."""


def _excusing_semantic_rules(rules: SemanticRules) -> CheckFunction:
    """`positive_data_acceptance`, except that a schema-valid request refused by one of
    `rules` passes: a 400/409/422 problem whose `type` is not the generic shape error
    (`.../validation`), so a body the document allows but the model refuses still fails."""

    def positive_data_acceptance(ctx: Any, response: Any, case: AnyCase) -> bool | None:
        try:
            return _POSITIVE_DATA_ACCEPTANCE(ctx, response, case)
        except Exception:
            if not _semantic_refusal(rules, response, case):
                raise
            return None

    return positive_data_acceptance


def _semantic_refusal(rules: SemanticRules, response: Any, case: AnyCase) -> bool:
    if f"{case.method.upper()} {case.path}" not in rules:
        return False
    if response.status_code not in (400, 409, 422):
        return False
    try:
        kind = str(response.json().get("type", ""))
    except Exception:  # not a problem document
        return False
    return not kind.endswith("/validation")


_POSITIVE_DATA_ACCEPTANCE = next(c for c in ALL_CHECKS if c.__name__ == "positive_data_acceptance")

CallKwargs = Callable[[AnyCase], Mapping[str, Any]]
"""Per-case keyword arguments for `Case.call` (`headers`, `data`, ...); a `headers`
entry replaces the run's headers. The hook may also adjust the case before it is sent."""


@dataclass
class FuzzReport:
    """What a run did: operations covered, requests sent, one entry per distinct failure."""

    operations: int = 0
    calls: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.operations} operations, {self.calls} calls, {len(self.failures)} failures"


@contextlib.contextmanager
def pooled_sessions(app: FastAPI, database_url: str) -> Iterator[None]:
    """Serve `app` in process (`schemathesis.openapi.from_asgi`) on a small connection
    pool instead of its own lifespan (no Kafka): schemathesis runs every in-process
    call on one event loop, where this lifespan opens the pool, and closes it there
    when the block ends. A connection per request would make the run twice as slow."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_async_engine(database_url, pool_size=2)
        app.state.sessions = session_maker(engine)
        try:
            yield
        finally:
            await engine.dispose()

    app.router.lifespan_context = lifespan
    try:
        yield
    finally:
        shutdown_lifespans()


def deletes_last(operation: Operation) -> bool:
    """Sort key running DELETE operations after the others, so rows named by known path
    parameters are still there for every other operation."""
    return operation.method.upper() == "DELETE"


def fuzz_operations(
    schema: BaseSchema,
    *,
    examples: int,
    checks: Sequence[CheckFunction] = ALL_CHECKS,
    headers: Mapping[str, str] | None = None,
    call_kwargs: CallKwargs | None = None,
    known_path_parameters: Mapping[str, str] | None = None,
    order: Callable[[Operation], Any] = deletes_last,
    coverage_cases: int | None = None,
    scenarios: int | None = None,
    semantic_rules: SemanticRules | None = None,
) -> FuzzReport:
    """Run every operation of `schema`: up to `coverage_cases` coverage-phase cases
    (default `examples`), up to `examples` generated cases per mode, then up to
    `scenarios` stateful scenarios over the whole document (default `examples`; 0
    skips them; a document without links has none).

    `headers` go with every call (a token). `known_path_parameters` (name -> value of
    an existing row) replace generated path parameters in every other positive case,
    the first included, so handlers behind a 404 are reached and the 404 itself still
    is. `order` is a sort key over the operations (stable; DELETEs last by default).
    `semantic_rules` names the operations whose schema-valid input may still be refused
    by a rule the document cannot state (see `SemanticRules`).
    """
    report = FuzzReport()
    if semantic_rules:
        excusing = _excusing_semantic_rules(semantic_rules)
        checks = [excusing if c is _POSITIVE_DATA_ACCEPTANCE else c for c in checks]
    run = _Run(report, list(checks), dict(headers or {}), call_kwargs, known_path_parameters or {})
    operations = sorted(_operations(schema), key=order)
    for operation in operations:
        report.operations += 1
        run.coverage(schema, operation, examples if coverage_cases is None else coverage_cases)
        run.mode(operation, GenerationMode.POSITIVE, examples)
        if any(operation.iter_parameters()) or operation.body:
            # Unsatisfiable: no input of this operation can be made invalid.
            with contextlib.suppress(Unsatisfiable):
                run.mode(operation, GenerationMode.NEGATIVE, examples)
    run.stateful(schema, examples if scenarios is None else scenarios)
    return report


def _operations(schema: BaseSchema) -> list[Operation]:
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operations.append(result.ok())
    return operations


def _drops_authorization(case: AnyCase) -> bool:
    """Whether `case` was generated without its (security-required) Authorization."""
    meta = getattr(case, "meta", None)
    if meta is None or not meta.is_negative_at(ParameterLocation.HEADER):
        return False
    return not any(name.lower() == "authorization" for name in (case.headers or {}))


@dataclass
class _Run:
    report: FuzzReport
    checks: list[CheckFunction]
    headers: dict[str, str]
    call_kwargs: CallKwargs | None
    known: Mapping[str, str]

    def _send(self, case: AnyCase, phase: str) -> None:
        self.report.calls += 1
        kwargs = self._kwargs(case)
        try:
            case.call_and_validate(checks=self.checks, **kwargs)
        except FailureGroup as failure:  # carries the response and a curl command
            self._fail(case, phase, failure.message)
        except Exception as error:  # no response at all (connection reset, say)
            self._fail(case, phase, f"{error!r} ({_inputs(case)})")

    def _kwargs(self, case: AnyCase) -> dict[str, Any]:
        headers = dict(self.headers)
        if _drops_authorization(case):
            # A negative case that leaves out the Authorization the security scheme
            # requires: sending our token anyway would make it a valid request.
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        kwargs: dict[str, Any] = {"headers": headers}
        if self.call_kwargs is not None:
            kwargs.update(self.call_kwargs(case))
        return kwargs

    def coverage(self, schema: BaseSchema, operation: Operation, limit: int) -> None:
        """The coverage phase's deterministic cases of `operation`, at most `limit`,
        generated within `COVERAGE_GENERATION_BUDGET_S` seconds in all (some schema
        shapes, a pattern plus a format plus a length bound, make schemathesis search for
        minutes; those operations keep the cases found in time, noted in the report)."""
        if limit <= 0:
            return
        cases = schema.iter_coverage_cases(
            operation,
            generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
            generation_config=schema.config.generation_for(operation=operation),
        )
        budget = _GenerationBudget(COVERAGE_GENERATION_BUDGET_S)
        for _ in range(limit):
            try:
                with budget:
                    case = next(cases, None)
            except BaseException as error:
                # Whatever the interrupted draw turned it into (an exception group, a
                # flaky-generation error), the budget ran out.
                if not (budget.expired or _out_of_budget_in(error)):
                    raise
                self.report.notes.append(
                    f"[coverage] {operation.method.upper()} {operation.path}: case generation "
                    f"stopped after {COVERAGE_GENERATION_BUDGET_S:g} s"
                )
                return
            if case is None:
                return
            self._send(case, "coverage")

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
            self._send(case, mode.value)

        probe()

    def stateful(self, schema: BaseSchema, scenarios: int) -> None:
        """Up to `scenarios` chains of linked operations, every step checked, failures
        recorded."""
        if scenarios <= 0:
            return
        try:
            base = schema.as_state_machine()
        except NoLinksFound:
            return
        if not schema.statistic.transitions.total:
            return
        run = self

        class Scenario(base):  # type: ignore[valid-type,misc]
            def get_call_kwargs(self, case: AnyCase) -> dict[str, Any]:
                run.report.calls += 1
                return run._kwargs(case)

            def validate_response(
                self,
                response: Any,
                case: AnyCase,
                additional_checks: Any = None,
                **kwargs: Any,
            ) -> None:
                # Recorded, not raised: a raised failure makes Hypothesis replay the
                # scenario against a server whose state has moved on.
                try:
                    case.validate_response(
                        response,
                        checks=run.checks,
                        transport_kwargs=kwargs or None,
                        recorder=self.recorder,
                    )
                except FailureGroup as failure:
                    run._fail(case, "stateful", failure.message)

        try:
            run_state_machine_as_test(
                Scenario,
                settings=settings(
                    max_examples=scenarios,
                    deadline=None,
                    database=None,
                    phases=[Phase.generate],
                    stateful_step_count=6,
                    suppress_health_check=list(HealthCheck),
                ),
            )
        except NoLinksFound:
            return
        except Exception as error:  # no response at all, say: the run stops, reported
            failure = f"[stateful] scenarios stopped: {error!r}"[:2000]
            if failure not in self.report.failures:
                self.report.failures.append(failure)

    def _fail(self, case: AnyCase, phase: str, detail: str) -> None:
        failure = f"[{phase}] {case.method} {case.formatted_path}: {detail.strip()}"
        if failure not in self.report.failures:  # a known id repeats the same request
            self.report.failures.append(failure)


COVERAGE_GENERATION_BUDGET_S = 5.0
"""Seconds of coverage-case generation per operation (not counting the calls)."""


class _OutOfBudget(BaseException):
    """Case generation used up its time budget. A BaseException, so that Hypothesis
    (which schemathesis draws coverage cases with) does not take it for a failure to
    replay and shrink."""


class _GenerationBudget:
    """A wall-clock budget over several `with` blocks, enforced with SIGALRM (only on
    the main thread, where pytest runs tests; elsewhere it is not enforced)."""

    def __init__(self, seconds: float) -> None:
        self.left = seconds
        self._enforced = threading.current_thread() is threading.main_thread()
        self._started = 0.0
        self.expired = False

    def __enter__(self) -> None:
        if self.left <= 0:
            raise _OutOfBudget
        self._started = time.monotonic()
        if self._enforced:
            signal.signal(signal.SIGALRM, self._expire)
            signal.setitimer(signal.ITIMER_REAL, self.left)

    def __exit__(self, *exc: object) -> None:
        if self._enforced:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
        self.left -= time.monotonic() - self._started

    def _expire(self, signum: int, frame: Any) -> None:
        self.expired = True
        if _inside_unraisable_callback(frame):
            # Raised there, the exception would be swallowed by the collector or the
            # weakref machinery (and reported as unraisable): try again a moment later.
            signal.setitimer(signal.ITIMER_REAL, 0.01)
            return
        raise _OutOfBudget


# Code the interpreter calls on its own, where an exception cannot propagate: a `gc`
# callback, a finaliser, a weak reference's callback (e.g. a WeakKeyDictionary's).
_UNRAISABLE_NAMES = frozenset({"gc_callback", "__del__"})
_WEAKREF_FILES = frozenset({weakref.__file__, _weakrefset.__file__})


def _inside_unraisable_callback(frame: Any) -> bool:
    while frame is not None:
        code = frame.f_code
        if code.co_name in _UNRAISABLE_NAMES or code.co_filename in _WEAKREF_FILES:
            return True
        frame = frame.f_back
    return False


def _out_of_budget_in(error: BaseException) -> bool:
    # Hypothesis reports an error raised while drawing inside an exception group.
    if isinstance(error, BaseExceptionGroup):
        return error.subgroup(_OutOfBudget) is not None
    return isinstance(error, _OutOfBudget)


def _inputs(case: AnyCase) -> str:
    inputs = f"query={case.query!r}"
    if not isinstance(case.body, NotSet):
        inputs += f" body={case.body!r}"
    return inputs
