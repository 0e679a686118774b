"""Every message of the console has a Chinese translation with the same placeholders,
and the committed template catalog (`messages.pot`) is current."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from tollgate.console.i18n import load_catalogs

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "tollgate" / "console"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def source_messages() -> set[str]:
    """Every msgid in the templates and Python sources, as `pybabel extract` finds it."""
    method_map = [
        ("src/tollgate/console/**.py", "python"),
        ("src/tollgate/console/templates/**.html", "jinja2"),
    ]
    options = {"src/tollgate/console/templates/**.html": {"trim_blocks": "true"}}
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT),
        method_map,
        options,
        keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None},
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_message_has_a_chinese_translation() -> None:
    with (PACKAGE / "locale" / "zh_Hans" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale="zh_Hans")
    translated: dict[str, str] = {}
    for message in catalog:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        text = message.string if isinstance(message.string, str) else message.string[0]
        translated[key] = text
    wanted = source_messages()
    missing = sorted(m for m in wanted if not translated.get(m))
    assert not missing, f"untranslated (run the README's catalog steps): {missing}"
    for msgid in wanted:
        assert set(PLACEHOLDER.findall(msgid)) == set(PLACEHOLDER.findall(translated[msgid])), msgid


def test_the_template_catalog_lists_every_message() -> None:
    with (PACKAGE / "locale" / "messages.pot").open("rb") as pot:
        listed = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(pot) if m.id}
    assert source_messages() == listed


def test_catalogs_compile_at_start() -> None:
    catalogs = load_catalogs()
    assert catalogs["zh-Hans"].gettext("Sign in") == "登录"
    assert catalogs["en"].gettext("Sign in") == "Sign in"


def test_chinese_says_credits_with_one_word() -> None:
    # Before: 额度 on the credits pages, 积分 on the portal's and registry's prices.
    with (PACKAGE / "locale" / "zh_Hans" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = read_po(po, locale="zh_Hans")
    for message in catalog:
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        texts = [message.string] if isinstance(message.string, str) else list(message.string)
        if not message.id or not any(re.search(r"\bcredits?\b", i, re.I) for i in ids):
            continue
        for text in texts:
            assert "额度" in text, (ids[0], text)
            assert "积分" not in text, (ids[0], text)
