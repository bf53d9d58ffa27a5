"""The example env file and the README's settings table follow the Settings declarations."""

from __future__ import annotations

from pathlib import Path

from sentserve.settings import Settings, env_template

ROOT = Path(__file__).resolve().parents[1]


def test_env_file_is_the_generated_template() -> None:
    assert (ROOT / "env").read_text() == env_template(), "run: sentserve config --template > env"


def test_readme_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    for field in Settings.model_fields.values():
        variable = str(field.validation_alias.choices[0])  # type: ignore[union-attr]
        assert f"`{variable}`" in readme, variable


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make run") < readme.index("## A tour")
    assert readme.index("make test") < readme.index("## A tour")
