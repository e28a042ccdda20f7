"""The shared layer's recipe: what it ships, how its cache and asset are keyed, what it prunes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra.constructs.layer import (
    PROVIDED_BY_RUNTIME,
    LayerRecipe,
    build_dependencies,
    runtime_requirements,
)

pytestmark = pytest.mark.infra


def _write_pyproject(tmp_path: Path, dependencies: list[str]) -> Path:
    path = tmp_path / "pyproject.toml"
    listed = ", ".join(f'"{dependency}"' for dependency in dependencies)
    path.write_text(f'[project]\nname = "x"\nversion = "0"\ndependencies = [{listed}]\n')
    return path


def test_the_layer_ships_the_project_dependencies_except_boto3() -> None:
    requirements = runtime_requirements()
    names = {requirement.split("[")[0].split(">")[0].split("=")[0].strip() for requirement in requirements}

    assert {"aws-lambda-powertools", "pydantic"} <= names
    assert "boto3" not in names


def test_runtime_provided_packages_are_dropped_whatever_their_spelling(tmp_path: Path) -> None:
    pyproject = _write_pyproject(tmp_path, ["Boto3>=1.40", "botocore", "pydantic>=2", "s3_transfer"])

    assert runtime_requirements(pyproject) == ("pydantic>=2", "s3_transfer")
    assert "s3transfer" in PROVIDED_BY_RUNTIME  # the normalized name; `s3_transfer` is another project


def test_the_dependency_cache_key_changes_with_the_requirements_only() -> None:
    recipe = LayerRecipe(requirements=("pydantic>=2", "aws-lambda-powertools>=3"))

    assert (
        recipe.dependencies_key
        == LayerRecipe(requirements=tuple(reversed(recipe.requirements))).dependencies_key
    )
    assert recipe.dependencies_key != LayerRecipe(requirements=("pydantic>=3",)).dependencies_key
    assert recipe.dependencies_key != LayerRecipe(recipe.requirements, platforms=("x",)).dependencies_key


def test_the_asset_hash_follows_the_package_source_but_not_its_bytecode(tmp_path: Path) -> None:
    package = tmp_path / "billing"
    package.mkdir()
    (package / "__init__.py").write_text("")
    recipe = LayerRecipe(requirements=("pydantic",))
    before = recipe.asset_hash(package)

    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "x.cpython-313.pyc").write_bytes(b"\0")
    assert recipe.asset_hash(package) == before

    (package / "money.py").write_text("CENTS = 100\n")
    assert recipe.asset_hash(package) != before


def test_a_cached_build_is_reused_without_running_pip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = LayerRecipe(requirements=("pydantic",))
    cached = tmp_path / recipe.dependencies_key / "python"
    cached.mkdir(parents=True)

    def no_pip(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("pip must not run when the cache holds the recipe")

    monkeypatch.setattr(subprocess, "run", no_pip)

    assert build_dependencies(recipe, cache_root=tmp_path) == cached


def test_a_build_installs_for_the_lambda_platform_and_prunes_runtime_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = LayerRecipe(requirements=("aws-lambda-powertools[tracer]",))
    commands: list[list[str]] = []

    def fake_pip(command: list[str], check: bool) -> None:
        commands.append(command)
        target = Path(command[command.index("--target") + 1])
        for name in ("aws_xray_sdk", "botocore", "botocore-1.40.0.dist-info", "bin", "pydantic"):
            (target / name).mkdir(parents=True)

    monkeypatch.setattr(subprocess, "run", fake_pip)

    built = build_dependencies(recipe, cache_root=tmp_path)

    (command,) = commands
    assert command[command.index("--python-version") + 1] == "3.13"
    assert "--only-binary=:all:" in command
    assert {command[i + 1] for i, arg in enumerate(command) if arg == "--platform"} == set(recipe.platforms)
    assert sorted(p.name for p in built.iterdir()) == ["aws_xray_sdk", "pydantic"]
    assert built == tmp_path / recipe.dependencies_key / "python"
