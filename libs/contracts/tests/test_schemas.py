from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tollgate.contracts import ALL_TOPICS, EVENT_TYPES
from tollgate.contracts.__main__ import main
from tollgate.contracts.schemas import ASYNCAPI_PATH, SCHEMA_DIR, drift, export, render

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_committed_schemas_match_the_models() -> None:
    # Fails after any model change until `python -m tollgate.contracts export` is re-run.
    assert drift(REPO_ROOT) == []


def _exported_copy(tmp_path: Path) -> Path:
    export(tmp_path)
    return tmp_path


def test_drift_reports_changed_missing_and_stale_files(tmp_path: Path) -> None:
    root = _exported_copy(tmp_path)
    assert drift(root) == []

    changed = root / SCHEMA_DIR / "tollgate.billing.credits.low.v1.json"
    changed.write_text(changed.read_text().replace("threshold", "limit"))
    (root / ASYNCAPI_PATH).unlink()
    (root / SCHEMA_DIR / "tollgate.billing.credits.vanished.v1.json").write_text("{}\n")

    report = "\n".join(drift(root))
    assert f"changed: {SCHEMA_DIR}/tollgate.billing.credits.low.v1.json" in report
    assert f"missing: {ASYNCAPI_PATH}" in report
    assert "stale: " in report


def test_check_command_fails_on_drift_and_export_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "libs" / "contracts").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "libs/contracts/pyproject.toml", tmp_path / "libs/contracts")

    assert main(["check", "--root", str(tmp_path)]) == 1
    assert "missing:" in capsys.readouterr().out
    assert main(["export", "--root", str(tmp_path)]) == 0
    assert main(["check", "--root", str(tmp_path)]) == 0


def test_one_schema_file_per_event_type_with_the_type_as_constant() -> None:
    files = render()
    for event_type in EVENT_TYPES:
        schema = json.loads(files[SCHEMA_DIR / f"{event_type}.json"])
        assert schema["properties"]["type"]["const"] == event_type
        assert {"id", "source", "type", "time", "data"} <= set(schema["required"])


def test_asyncapi_describes_every_topic_and_message() -> None:
    document = json.loads(render()[ASYNCAPI_PATH])
    assert document["asyncapi"] == "3.0.0"
    assert set(document["channels"]) == {topic.name for topic in ALL_TOPICS}
    assert set(document["components"]["messages"]) == set(EVENT_TYPES)
    for topic in ALL_TOPICS:
        channel = document["channels"][topic.name]
        kafka = channel["bindings"]["kafka"]
        assert kafka["partitions"] == topic.partitions
        assert kafka["topicConfiguration"]["cleanup.policy"] == [topic.cleanup]
        for model in topic.event_types:
            message = document["components"]["messages"][model.event_type]
            assert message["bindings"]["kafka"]["key"]["description"] == topic.key
            schema_name = message["payload"]["$ref"].rsplit("/", 1)[1]
            assert schema_name in document["components"]["schemas"]
