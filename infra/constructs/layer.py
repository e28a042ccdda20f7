"""The shared Lambda layer: the `billing` package plus the runtime dependencies, built without Docker.

`pip install --platform manylinux… --only-binary=:all:` downloads the Lambda platform's wheels on any
host, so CDK local bundling builds the layer with no container. The installed dependencies are cached
under `.build/layer/<hash of the requirements and target>/`, so only the first synth reaches PyPI.

Offline synths and tests skip the build, and nothing is downloaded: with CDK's standard switch
`"aws:cdk:bundling-stacks": []` in the App's context (what `build_app` in tests uses; the CDK CLI refuses
`aws:` keys in `-c`), or with `cdk synth -c skip_layer_build=true`. The layer asset is then the unbuilt
`shared/` folder: such an assembly is for inspection only, never for deployment.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import BUILD_DIR, PYPROJECT, SHARED_DIR

RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64
PYTHON_VERSION = "3.13"
# Lambda's python3.13 runs on Amazon Linux 2023 (glibc 2.34): both wheel generations load there.
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
# In the Lambda runtime already. botocore would otherwise arrive through aws-xray-sdk and shadow the
# runtime's copy, leaving it mismatched with the runtime's boto3.
PROVIDED_BY_RUNTIME = frozenset({"boto3", "botocore", "s3transfer"})
_CACHE_FORMAT = 1
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


def runtime_requirements(pyproject: Path = PYPROJECT) -> tuple[str, ...]:
    """`[project].dependencies` of pyproject.toml, minus what the Lambda runtime provides."""
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return tuple(req for req in dependencies if _distribution_name(req) not in PROVIDED_BY_RUNTIME)


def _distribution_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"unreadable requirement in pyproject.toml: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


@dataclass(frozen=True)
class LayerRecipe:
    """What goes into the layer; its digest names the dependency cache and the CDK asset."""

    requirements: tuple[str, ...]
    platforms: tuple[str, ...] = PLATFORMS
    python_version: str = PYTHON_VERSION

    @property
    def dependencies_key(self) -> str:
        recipe = {
            "format": _CACHE_FORMAT,
            "requirements": sorted(self.requirements),
            "platforms": list(self.platforms),
            "python": self.python_version,
            "pruned": sorted(PROVIDED_BY_RUNTIME),
        }
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:24]

    def asset_hash(self, package_dir: Path) -> str:
        digest = hashlib.sha256(self.dependencies_key.encode())
        for path in _package_files(package_dir):
            digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()


def _package_files(package_dir: Path) -> Iterable[Path]:
    return sorted(
        path
        for path in package_dir.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc", ".pyo"}
    )


def build_dependencies(recipe: LayerRecipe, cache_root: Path = BUILD_DIR / "layer") -> Path:
    """Install the recipe's wheels once; returns the cached `python/` folder (layer layout)."""
    cached = cache_root / recipe.dependencies_key / "python"
    if cached.is_dir():
        return cached
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="deps-", dir=cache_root))
    try:
        target = staging / "python"
        platform_args = [arg for platform in recipe.platforms for arg in ("--platform", platform)]
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            *platform_args,
            "--implementation",
            "cp",
            "--python-version",
            recipe.python_version,
            "--only-binary=:all:",
            "--target",
            str(target),
            *recipe.requirements,
        ]
        subprocess.run(command, check=True)  # noqa: S603 - fixed argv, requirements from pyproject
        _prune(target)
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Atomic publish: a concurrent synth either sees the whole folder or builds its own.
            os.replace(target, cached)
        except OSError:
            if not cached.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cached


def _prune(target: Path) -> None:
    for entry in list(target.iterdir()):
        name = entry.name.split("-")[0].lower() if entry.suffix == ".dist-info" else entry.name.lower()
        if name in PROVIDED_BY_RUNTIME or entry.name in {"bin", "__pycache__"}:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _copy_tree(source: Path, destination: Path) -> None:
    def link_or_copy(src: str, dst: str) -> Any:
        try:
            return os.link(src, dst)  # same filesystem: no bytes copied; CDK only reads the output
        except OSError:
            return shutil.copy2(src, dst)

    shutil.copytree(source, destination, ignore=_IGNORED, copy_function=link_or_copy, dirs_exist_ok=True)


@jsii.implements(cdk.ILocalBundling)
class PipLayerBundling:
    """CDK local bundling: cached platform wheels + the `billing` package, laid out as `python/`."""

    def __init__(self, recipe: LayerRecipe, package_dir: Path) -> None:
        self._recipe = recipe
        self._package_dir = package_dir

    def try_bundle(self, output_dir: str, *_args: Any, **_options: Any) -> bool:
        dependencies = build_dependencies(self._recipe)
        python_dir = Path(output_dir) / "python"
        _copy_tree(dependencies, python_dir)
        _copy_tree(self._package_dir, python_dir / self._package_dir.name)
        return True


class SharedLayer(Construct):
    """One layer every function uses: `billing` and its third-party dependencies."""

    def __init__(self, scope: Construct, construct_id: str, *, build: bool = True) -> None:
        super().__init__(scope, construct_id)
        recipe = LayerRecipe(requirements=runtime_requirements())
        package_dir = SHARED_DIR / "billing"
        if build:
            code = self._build_code(recipe, package_dir)
        else:
            code = lambda_.Code.from_asset(str(package_dir.parent), exclude=["**/__pycache__", "**/*.pyc"])
            cdk.Annotations.of(self).add_warning_v2(
                "billing:layer-not-built",
                "skip_layer_build: the layer is not built; do not deploy this assembly.",
            )
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=code,
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="usage-billing: billing package, aws-lambda-powertools, pydantic",
        )

    @staticmethod
    def _build_code(recipe: LayerRecipe, package_dir: Path) -> lambda_.Code:
        return lambda_.Code.from_asset(
            str(package_dir.parent),
            exclude=["**/__pycache__", "**/*.pyc"],
            asset_hash_type=cdk.AssetHashType.CUSTOM,
            asset_hash=recipe.asset_hash(package_dir),
            bundling=cdk.BundlingOptions(
                # Never pulled: local bundling always succeeds or raises.
                image=cdk.DockerImage.from_registry("public.ecr.aws/sam/build-python3.13"),
                local=PipLayerBundling(recipe, package_dir),
            ),
        )
