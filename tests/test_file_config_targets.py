"""A checkpoint's stored config names no code (issue 33, item 1).

Checkpoints whose config names ``torch.load`` (on a payload that runs a shell when unpickled),
``builtins.open`` (on a victim file), ``os.system``, ``subprocess.run`` and ``builtins.eval`` in
the generator, the dataset and the optimizer nodes, inside ``_args_``, or through an
interpolation go to every command that reads a checkpoint; each must refuse in one line naming
the key and the target, with no marker file and the victim file unchanged. A network pickle
whose data carries such a node is refused the same way, a normal checkpoint and any spelling of
an allowed class still load, and ``sweep_report`` reads a run's saved config as values only.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from PIL import Image

from dgan import convert, evaluate, generate, project, style_mixing, video
from dgan.config.stored_config import (
    BUILT_FACTORIES,
    BUILT_MODULES,
    check_stored_config,
    is_built_target,
)
from dgan.core.errors import ConfigError
from dgan.inference.loading import build_generator, load_generator
from tests.network_pickles import dump_network_pickle

from .conftest import CONF, QUIET_TOY, compose_train, fit_in_process
from .generator_files import STYLEGAN2, write_generator_checkpoint
from .shell_payload import ShellPayload

VICTIM_TEXT = "precious results\n"
REFUSED = "refused, nothing was run"


@dataclasses.dataclass(frozen=True)
class Scene:
    """Where the attacks point: the file they would create and the file they would empty."""

    root: Path
    marker: Path
    victim: Path
    payload: Path

    def intact(self) -> None:
        assert not self.marker.exists(), "the stored config ran code"
        assert self.victim.read_text() == VICTIM_TEXT, "the stored config emptied the victim"


# Each attack: the node a hostile config would hold, from the scene's paths.
ATTACKS: dict[str, Callable[[Scene], dict[str, Any]]] = {
    "torch.load": lambda s: {"_target_": "torch.load", "f": str(s.payload),
                             "weights_only": False},
    "builtins.open": lambda s: {"_target_": "builtins.open", "_args_": [str(s.victim), "w"]},
    "os.system": lambda s: {"_target_": "os.system", "_args_": [f"touch {s.marker}"]},
    "subprocess.run": lambda s: {"_target_": "subprocess.run",
                                 "args": ["touch", str(s.marker)]},
    "builtins.eval": lambda s: {"_target_": "builtins.eval",
                                "_args_": [f"open({str(s.victim)!r}, 'w')"]},
}


def _in_generator(config: dict, node: dict) -> str:
    config["model"]["generator"] = node
    return "model.generator._target_"


def _in_dataset(config: dict, node: dict) -> str:
    config["dataset"] = node
    return "dataset._target_"


def _in_optimizer(config: dict, node: dict) -> str:
    config["model"]["g_optimizer"] = {**node, "_partial_": True}
    return "model.g_optimizer._target_"


def _in_args(config: dict, node: dict) -> str:
    config["model"]["generator"]["_args_"] = [node]  # under an allowed target
    return "model.generator._args_[0]._target_"


PLACES: dict[str, Callable[[dict, dict], str]] = {
    "generator": _in_generator, "dataset": _in_dataset, "optimizer": _in_optimizer,
    "args": _in_args,
}
# One case per attack and place, and an interpolation that would build a node after any check.
CASES = [f"{attack}@{place}" for attack in ATTACKS for place in PLACES] + ["interpolation"]


@dataclasses.dataclass(frozen=True)
class Poisoned:
    path: Path
    key: str
    shown: str  # what the message names after the key: the target or the interpolation


@pytest.fixture(scope="module")
def toy_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint of a short toy run: its config has every node a run stores."""
    run_dir = tmp_path_factory.mktemp("run")
    fit_in_process([*QUIET_TOY, "kimg=0.128"], run_dir)
    return run_dir / "checkpoints" / "last.ckpt"


def _scene(root: Path) -> Scene:
    scene = Scene(root=root, marker=root / "marker.txt", victim=root / "victim.txt",
                  payload=root / "payload.bin")
    scene.victim.write_text(VICTIM_TEXT)
    torch.save(ShellPayload(scene.marker), scene.payload)
    return scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    return _scene(tmp_path_factory.mktemp("scene"))


@pytest.fixture(scope="module")
def poisoned(toy_checkpoint: Path, scene: Scene) -> dict[str, Poisoned]:
    state = torch.load(toy_checkpoint, map_location="cpu", weights_only=True)
    files = {}
    for case in CASES:
        changed = copy.deepcopy(state)
        config = changed["dgan"]["config"]
        if case == "interpolation":
            shown = ("${oc.create:{_target_: builtins.open, _args_: ['"
                     + str(scene.victim) + "', w]}}")
            config["model"]["generator"]["hidden"] = shown
            key = "model.generator.hidden"
        else:
            attack, place = case.split("@")
            key = PLACES[place](config, ATTACKS[attack](scene))
            shown = attack
        path = scene.root / f"{case.replace('@', '-')}.ckpt"
        torch.save(changed, path)
        files[case] = Poisoned(path=path, key=key, shown=shown)
    return files


def _one_refusal(err: str, case: Poisoned) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("error: ") and REFUSED in line, line
    assert f"={case.path}: {case.key}=" in line, line
    assert repr(case.shown)[:40] in line, line


def _target_image(root: Path) -> Path:
    path = root / "target.png"
    if not path.exists():
        Image.new("RGB", (16, 16), (120, 30, 200)).save(path)
    return path


# Each command that reads a checkpoint, with the arguments it needs to get that far.
COMMANDS: dict[str, Callable[[Path, Path], int]] = {
    "generate": lambda ckpt, out: generate.main([f"ckpt={ckpt}", f"outdir={out}"]),
    "evaluate": lambda ckpt, out: evaluate.main([f"ckpt={ckpt}", "metrics=[mode_coverage100]",
                                                 f"outdir={out}"]),
    "project": lambda ckpt, out: project.main([f"ckpt={ckpt}", f"outdir={out}", "steps=1",
                                               f"target={_target_image(out.parent)}"]),
    "style_mixing": lambda ckpt, out: style_mixing.main([f"ckpt={ckpt}", f"outdir={out}",
                                                         "rows=1,2", "cols=3"]),
    "video": lambda ckpt, out: video.main([f"ckpt={ckpt}", f"outdir={out}", "seeds=0,1",
                                           "frames=2", "format=png"]),
    "convert": lambda ckpt, out: convert.main([str(ckpt), str(out / "out.ckpt")]),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_a_config_that_names_code(command, poisoned, scene, tmp_path,
                                                        capsys) -> None:
    for case in CASES:
        out = tmp_path / case.replace("@", "-")
        assert COMMANDS[command](poisoned[case].path, out) == 2, case
        _one_refusal(capsys.readouterr().err, poisoned[case])
        scene.intact()
        assert not out.exists() or not any(out.iterdir()), f"{command} wrote before refusing"


def _train_job(overrides: list[str], run_dir: Path) -> int:
    from dgan.train import job

    with pytest.raises(SystemExit) as stop:
        job(compose_train([*QUIET_TOY, "kimg=1", *overrides], run_dir))
    return int(stop.value.code)


# Train builds its run before it reads resume= or init=: each attack once and each place once
# over the two keys keeps this file fast (the reader is the same for every case).
TRAIN_CASES = [("resume", f"{attack}@generator") for attack in ATTACKS] + [
    ("init", f"builtins.open@{place}") for place in PLACES] + [("init", "interpolation")]


@pytest.mark.parametrize(("key", "case"), TRAIN_CASES)
def test_train_resume_and_init_refuse_a_config_that_names_code(key, case, poisoned, scene,
                                                               tmp_path, capsys) -> None:
    assert _train_job([f"{key}={poisoned[case].path}"], tmp_path / "run") == 2
    _one_refusal(capsys.readouterr().err, Poisoned(
        path=poisoned[case].path, key=poisoned[case].key, shown=poisoned[case].shown))
    scene.intact()
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


@pytest.fixture(scope="module")
def hostile_pickle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Scene]:
    """A network pickle of plain data (it passes the safe reader) whose training_set_kwargs
    put a node that opens the victim for writing into the converted config's dataset."""
    scene = _scene(tmp_path_factory.mktemp("pickle"))
    torch.manual_seed(0)
    G = build_generator({"model": {"generator": STYLEGAN2}})
    kwargs = {k: v for k, v in STYLEGAN2.items() if k != "_target_"}
    path = scene.root / "network-snapshot.pkl"
    dump_network_pickle(path, {"G_ema": (G, kwargs)},
                        training_set_kwargs={"path": ATTACKS["builtins.open"](scene),
                                             "resolution": 16})
    return path, scene


PICKLE_COMMANDS: dict[str, Callable[[Path, Path], int]] = {
    "convert": lambda pkl, out: convert.main([str(pkl), str(out / "out.ckpt")]),
    "generate": lambda pkl, out: generate.main([f"pkl={pkl}", f"outdir={out}"]),
    "evaluate": lambda pkl, out: evaluate.main([f"pkl={pkl}", "metrics=[fid_digits100_full]",
                                                f"outdir={out}"]),
}


def test_a_network_pickle_cannot_carry_a_node_into_the_config(hostile_pickle, tmp_path,
                                                              capsys) -> None:
    path, scene = hostile_pickle
    expected = Poisoned(path=path, key="dataset.path._target_", shown="builtins.open")
    for name, command in PICKLE_COMMANDS.items():
        assert command(path, tmp_path / name) == 2, name
        _one_refusal(capsys.readouterr().err, expected)
        scene.intact()
    assert _train_job([f"init={path}"], tmp_path / "run") == 2
    _one_refusal(capsys.readouterr().err, expected)
    scene.intact()


def test_a_normal_checkpoint_still_runs_every_part_it_builds(toy_checkpoint, tmp_path) -> None:
    # The toy's generate builds G, D (the toy figure) and the dataset (the reals drawn under).
    assert generate.main([f"ckpt={toy_checkpoint}", "seeds=0-3", f"outdir={tmp_path}"]) == 0
    assert (tmp_path / "toy_figure.png").is_file()


@pytest.mark.parametrize("target", ["dgan.networks.stylegan2.Generator",
                                    "dgan.networks.stylegan2.generator.Generator"])
def test_any_spelling_of_an_allowed_class_loads(target, tmp_path) -> None:
    path = write_generator_checkpoint({**STYLEGAN2, "_target_": target}, tmp_path / "g.ckpt")
    G = load_generator(path).G
    assert type(G).__module__ == "dgan.networks.stylegan2.generator"


@pytest.mark.parametrize("target", [
    "dgan.diffusion.Diffusion", "dgan.diffusion.process.Diffusion", "torch.optim.Adam",
    "torch.optim.adam.Adam", "dgan.tracking.loggers.wandb_logger", "lightning.Trainer",
    "dgan.networks.mlp.MLPGenerator", "dgan.data.toy.ToyDataset"])
def test_allowed_targets(target) -> None:
    assert is_built_target(target)


@pytest.mark.parametrize("target", [
    "torch.load", "builtins.open", "os.system", "subprocess.run", "builtins.eval",
    "dgan.networks.mlp.torch.load",        # a foreign function reached through a dgan module
    "dgan.networks.mlp.nn.Linear",         # a foreign class reached through a dgan module
    "dgan.networks.mlp.MLPGenerator.__class__", "torch.optim.Optimizer.__init__",
    "torch.optim.lr_scheduler.LambdaLR",   # torch.optim, but not an optimizer
    "dgan.data.prepare.main", "dgan.files.atomic.atomic_write_bytes",
    "dgan.metrics.feature_extractors.TorchScriptFeatures",  # dgan's, but no config builds it
    "dgan.networks.stylegan2.preset", "dgan.networks", "dganx.Model", "lightning.Fabric",
    "dgan.networks.mlp.MLPGenerator ", ""])
def test_refused_targets(target) -> None:
    assert not is_built_target(target)


def test_the_refusal_is_the_documented_line() -> None:
    config = {"model": {"generator": {"_target_": "torch.load", "f": "x"}}}
    with pytest.raises(ConfigError) as info:
        check_stored_config(config, "ckpt=x.ckpt")
    assert str(info.value) == ("ckpt=x.ckpt: model.generator._target_='torch.load' is not a "
                               "class dgan builds; refused, nothing was run")
    nested = {"metrics": {"_target_": "dgan.callbacks.metrics.MetricsCallback",
                          "metrics": [{"_target_": 7}]}}
    with pytest.raises(ConfigError, match=r"metrics\.metrics\[0\]\._target_=7 is not a class"):
        check_stored_config(nested, "resume=r.ckpt")


def _conf_targets(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [t for key, value in node.items() if key != "hydra" for t in (
            [value] if key == "_target_" else _conf_targets(value))]
    if isinstance(node, list):
        return [t for item in node for t in _conf_targets(item)]
    return []


def test_every_target_of_the_configs_passes() -> None:
    """What dgan's own configs name (outside Hydra's node, never stored) a checkpoint may name."""
    targets = {t for path in CONF.rglob("*.yaml") if "hydra" not in path.relative_to(CONF).parts
               for t in _conf_targets(yaml.safe_load(path.read_text()))}
    assert len(targets) > 20
    refused = sorted(t for t in targets if not is_built_target(t))
    assert not refused, refused


def _modules_below(name: str) -> list[str]:
    import pkgutil

    module = importlib.import_module(name)
    if not hasattr(module, "__path__"):
        return [name]
    return [name, *(m.name for m in pkgutil.walk_packages(module.__path__, name + "."))]


def test_the_source_lookup_agrees_with_importing() -> None:
    """Every public name of the allowed modules (their own classes, re-exports, foreign
    imports, functions) is decided as the imported object says: a class defined in an allowed
    module, or a listed factory."""
    checked = 0
    for module_name in {m for allowed in BUILT_MODULES for m in _modules_below(allowed)}:
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if name.startswith("_") or inspect.ismodule(obj):
                continue
            defined_in = getattr(obj, "__module__", "") or ""
            expected = (inspect.isclass(obj) and not obj.__name__.startswith("_") and any(
                defined_in == a or defined_in.startswith(a + ".") for a in BUILT_MODULES)) or (
                inspect.isfunction(obj) and (defined_in, obj.__name__) in BUILT_FACTORIES)
            assert is_built_target(f"{module_name}.{name}") == expected, (module_name, name)
            checked += 1
    assert checked > 100


def test_sweep_report_reads_a_runs_config_as_values(tmp_path, capsys) -> None:
    """sweep_report never instantiates: a saved config naming code is read as values."""
    from dgan import sweep_report

    scene = _scene(tmp_path)
    hostile = {**ATTACKS["builtins.open"](scene), "higher_is_better": False}
    for num in range(2):
        job = tmp_path / "sweep" / str(num)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed={num}\n")
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(
            {"metrics": hostile, "model": {"generator": ATTACKS["os.system"](scene)}}))
        (job / "hparams.yaml").write_text(yaml.safe_dump({"dataset": hostile}))
        (job / "metrics.jsonl").write_text(json.dumps({"kimg": 1.0, "fid": 30.0 + num}) + "\n")
    assert sweep_report.main([str(tmp_path / "sweep"), "--metric", "fid"]) == 0
    scene.intact()
    assert (tmp_path / "sweep" / "sweep_report.csv").is_file()


def test_sweep_report_refuses_a_python_tag_in_one_line(tmp_path, capsys) -> None:
    """A saved config with a YAML tag naming a Python object is not parsed into it: one line."""
    from dgan import sweep_report

    scene = _scene(tmp_path)
    job = tmp_path / "sweep" / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
    config = job / ".hydra" / "config.yaml"
    config.write_text(f"model: !!python/object/apply:builtins.open [{scene.victim}, w]\n")
    (job / "metrics.jsonl").write_text(json.dumps({"kimg": 1.0, "fid": 30.0}) + "\n")
    assert sweep_report.main([str(tmp_path / "sweep"), "--metric", "fid"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and str(config) in err[0] and "not a plain YAML file" in err[0], err
    assert "Traceback" not in "".join(err)
    scene.intact()
