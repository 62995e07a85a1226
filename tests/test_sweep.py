"""lk.sweep / lightkit sweep: Optuna over a lightkit config, every trial a normal run."""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna")
pytest.importorskip("optuna_integration")

import lightkit as lk  # noqa: E402
from lightkit.cli import main  # noqa: E402
from lightkit.sweeps._space import read_space  # noqa: E402

LR = "model.init_args.optimizer.init_args.lr"
BATCH = "data.init_args.batch_size"
SPACE = {LR: {"type": "float", "low": 1e-3, "high": 3e-2, "log": True}}
# Trials that take a moment: a few batches of one epoch.
QUICK = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=2",
]


def _config(root: Path, max_epochs: int = 3) -> dict:
    """Digits (bundled with scikit-learn) and a small MLP: a real run of a few seconds (8
    batches of 64 an epoch)."""
    return {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": max_epochs,
            "default_root_dir": str(root / "runs"),
            "enable_progress_bar": False,
            "patience": 2,
            "limit_train_batches": 8,
        },
        "model": {
            "class_path": "lightkit.ClassificationModule",
            "init_args": {
                "num_classes": 10,
                "net": {
                    "class_path": "lightkit.models.MLP",
                    "init_args": {"in_features": 64, "out_features": 10, "hidden": [64]},
                },
                "optimizer": {"class_path": "lightkit.optim.adam", "init_args": {"lr": 0.003}},
            },
        },
        "data": {
            "class_path": "lightkit.data.DigitsDataModule",
            "init_args": {"batch_size": 64, "num_workers": 0},
        },
    }


def _files(tmp_path: Path, space: dict, max_epochs: int = 3) -> tuple[Path, Path]:
    config, search = tmp_path / "base.yaml", tmp_path / "space.yaml"
    config.write_text(yaml.safe_dump(_config(tmp_path, max_epochs)))
    search.write_text(yaml.safe_dump(space))
    return config, search


def _study(study_dir: Path):
    from filelock import FileLock

    # Under the sweep's lock: a sweep starting meanwhile creates the database's tables.
    with FileLock(str(study_dir / "study.lock")):
        return optuna.load_study(
            study_name="lightkit", storage=f"sqlite:///{study_dir / 'study.db'}"
        )


def _lightkit(*args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from lightkit.cli import main; sys.exit(main())",
        *args,
    ]


# ---- the search space is checked before any trial runs ------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "float", "low": 0.1, "high": 0.01}, "low (0.1) must be less than high (0.01)"),
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "a log range needs low > 0"),
        ({"type": "float", "low": 1e-3, "high": 1.0, "log": True, "step": 0.1}, "not both"),
        ({"type": "float", "low": 1e-3}, "needs high"),
        ({"type": "float", "low": "small", "high": 1.0}, "must be a finite number"),
        ({"type": "int", "low": 1.5, "high": 4}, "must be an integer"),
        ({"type": "uniform", "low": 0, "high": 1}, "type must be one of float, int, categorical"),
        ({"type": "float", "low": 0, "high": 1, "lg": True}, "unknown field(s) ['lg']"),
        ({"type": "categorical", "choices": []}, "non-empty list of choices"),
        ({"type": "categorical", "choices": [1, 1]}, "repeat a value"),
        ({"type": "categorical", "choices": [{"a": 1}]}, "choices must be numbers"),
        ({"type": "float", "low": 0, "high": 1, "log": "yes"}, "log must be true or false"),
    ],
)
def test_a_bad_spec_names_its_key(spec, message):
    with pytest.raises((ValueError, TypeError)) as err:
        read_space({LR: spec})
    assert LR in str(err.value) and message in str(err.value)


@pytest.mark.parametrize(
    "space",
    [{}, [LR], {"trainer.default_root_dir": ["a", "b"]}, {"ckpt_path": ["x"]}, {"": [1, 2]}],
)
def test_a_bad_space_is_refused(space):
    with pytest.raises((ValueError, TypeError)):
        read_space(space)


def test_yaml_exponents_without_a_dot_are_numbers(tmp_path):
    # YAML 1.1 reads 1e-4 as text; the search space is read as YAML 1.2 does: a number.
    search = tmp_path / "space.yaml"
    search.write_text(f"{LR}: {{type: float, low: 1e-4, high: 3e-2}}\n")
    (param,) = read_space(search)
    assert (param.low, param.high) == (1e-4, 3e-2)
    with pytest.raises(TypeError, match="must be a finite number"):  # quoted: text
        read_space({LR: {"type": "float", "low": "1e-4", "high": 3e-2}})


def test_a_list_is_a_categorical_choice():
    (param,) = read_space({BATCH: [32, 64]})
    assert (param.type, param.choices) == ("categorical", (32, 64))


@pytest.mark.parametrize(
    ("space", "named"),
    [
        ({"model.init_args.optimizer.init_args.lrx": SPACE[LR]}, "optimizer.init_args.lrx"),
        ({"model.init_args.nope": [1, 2]}, "model.init_args.nope"),
        ({"trainer.max_epochs": {"type": "float", "low": 1, "high": 3}}, "trainer.max_epochs"),
        ({BATCH: {"type": "float", "low": 16, "high": 64}}, BATCH),
        ({LR: ["big", "small"]}, LR),
    ],
)
def test_a_key_or_type_the_config_does_not_take_fails_before_any_trial(tmp_path, space, named):
    study_dir = tmp_path / "study"
    with pytest.raises(ValueError, match="search space key") as err:
        lk.sweep(_config(tmp_path), space, n_trials=2, study_dir=study_dir)
    assert named in str(err.value)
    assert not study_dir.exists()  # no study, no trial


def test_the_command_reports_a_bad_space_naming_the_key(tmp_path, capsys):
    config, search = _files(tmp_path, {"model.init_args.optimizer.init_args.lrx": SPACE[LR]})
    code = main(["sweep", "--config", str(config), "--search", str(search), "--n-trials", "2"])
    assert code == 2
    assert "model.init_args.optimizer.init_args.lrx" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_sweep_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="n_trials"):
        lk.sweep(_config(tmp_path), SPACE, n_trials=0, study_dir=tmp_path / "s")
    with pytest.raises(ValueError, match="pruner"):
        lk.sweep(_config(tmp_path), SPACE, n_trials=1, study_dir=tmp_path / "s", pruner="mean")
    with pytest.raises(ValueError, match=r"--section\.key=value"):
        lk.sweep(_config(tmp_path), SPACE, n_trials=1, study_dir=tmp_path / "s", overrides=["x"])
    with pytest.raises(ValueError, match="cannot be given"):
        lk.sweep(_config(tmp_path), SPACE, 1, tmp_path / "s", overrides=["--trainer.version=3"])
    with pytest.raises(FileNotFoundError, match="config"):
        lk.sweep(tmp_path / "missing.yaml", SPACE, n_trials=1, study_dir=tmp_path / "s")


# ---- trials --------------------------------------------------------------------------------


@pytest.mark.slow
def test_failed_trials_are_recorded_with_their_reason_and_the_sweep_goes_on(tmp_path, capsys):
    study_dir = tmp_path / "study"
    # batch_size 0 is an int (the config takes it) that the data module refuses at build time.
    study = lk.sweep(_config(tmp_path), {BATCH: [0]}, n_trials=2, study_dir=study_dir)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "FAIL"]
    for trial in trials:
        assert "batch_size" in trial.user_attrs["fail_reason"]
    with open(study_dir / "trials.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [r["state"] for r in rows] == ["failed", "failed"]
    assert "batch_size" in rows[0]["reason"]
    assert "no trial finished" in capsys.readouterr().out
    assert not (study_dir / "best.yaml").exists()


@pytest.mark.slow
def test_the_first_trial_is_the_configs_own_values_when_they_lie_in_the_space(tmp_path, capsys):
    # batch_size 0 fails at build time: trials cost nothing here, only their values matter.
    space = {BATCH: [0, 64]}  # the config's batch size is 64
    study = lk.sweep(_config(tmp_path), space, n_trials=1, study_dir=tmp_path / "a")
    assert study.trials[0].params == {BATCH: 64} and study.trials[0].user_attrs["baseline"]
    study = lk.sweep(_config(tmp_path), {BATCH: [0, 16]}, n_trials=1, study_dir=tmp_path / "b")
    assert "baseline" not in study.trials[0].user_attrs
    assert "no baseline trial: the config's value of data.init_args.batch_size=64" in (
        capsys.readouterr().err
    )
    study = lk.sweep(_config(tmp_path), space, 1, tmp_path / "c", seed=1, baseline=False)
    assert "baseline" not in study.trials[0].user_attrs
    with pytest.raises(TypeError, match="baseline must be True or False"):
        lk.sweep(_config(tmp_path), space, 1, tmp_path / "d", baseline="no")


@pytest.mark.parametrize(
    ("spec", "inside", "outside"),
    [
        ({"type": "float", "low": 0.001, "high": 0.1, "log": True}, [0.001, 0.05], [0.0, 0.2]),
        ({"type": "int", "low": 16, "high": 128, "step": 16}, [16, 64, 128], [24, 8, 64.5]),
        ({"type": "float", "low": 0.0, "high": 0.5, "step": 0.1}, [0.1, 0.3], [0.25]),
        ({"type": "categorical", "choices": [32, "x", True]}, [32, "x", True], [1, 33]),
    ],
)
def test_what_a_range_contains(spec, inside, outside):
    (param,) = read_space({LR: spec})
    assert all(param.contains(v) for v in inside)
    assert not any(param.contains(v) for v in outside)


@pytest.mark.slow
def test_text_choices_reach_the_config_as_text(tmp_path):
    # Text settings (a logger name, a class path) parse as given, quotes and all checked.
    space = {
        BATCH: [0],  # every trial fails when its data module is built: no training here
        "trainer.logger": ["csv", "tensorboard"],
        "model.init_args.optimizer.class_path": ["lightkit.optim.adam", "lightkit.optim.sgd"],
    }
    study = lk.sweep(_config(tmp_path), space, n_trials=1, study_dir=tmp_path / "s")
    assert "batch_size" in study.trials[0].user_attrs["fail_reason"]
    with pytest.raises(ValueError, match=r"trainer\.max_epochs"):  # text where a number goes
        lk.sweep(_config(tmp_path), {"trainer.max_epochs": ["five"]}, 1, tmp_path / "t")


@pytest.mark.parametrize("key", ["trainer.monitor", "trainer.mode"])
def test_the_monitor_is_not_searched(key):
    with pytest.raises(ValueError, match="compared by the config's monitor"):
        read_space({key: ["a", "b"]})


def test_a_yaml_key_given_twice_is_refused(tmp_path):
    search = tmp_path / "space.yaml"
    search.write_text(f"{BATCH}: [16]\n{BATCH}: [32]\n")
    with pytest.raises(ValueError, match="given twice"):
        read_space(search)


def test_an_int_step_that_does_not_divide_the_range_is_refused():
    with pytest.raises(ValueError, match="high=80 is the last value it reaches"):
        read_space({BATCH: {"type": "int", "low": 16, "high": 100, "step": 32}})


@pytest.mark.slow
def test_a_bad_study_folder_or_database_is_refused_and_nothing_is_overwritten(tmp_path):
    config, space = _config(tmp_path), {BATCH: [0]}
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file; expected a folder"):
        lk.sweep(config, space, 1, tmp_path / "file")
    with pytest.raises(TypeError, match="study_dir must be a folder path"):
        lk.sweep(config, space, 1, 5)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "study.db").write_bytes(b"x" * 5000)
    with pytest.raises(ValueError, match="is not an SQLite database"):
        lk.sweep(config, space, 1, tmp_path / "junk")
    import sqlite3

    (tmp_path / "other").mkdir()
    with sqlite3.connect(tmp_path / "other" / "study.db") as db:
        db.execute("CREATE TABLE notes (x)")
    with pytest.raises(ValueError, match="not an Optuna study"):
        lk.sweep(config, space, 1, tmp_path / "other")
    # A trial folder that already holds files is never trained into.
    lk.sweep(config, space, 1, tmp_path / "s")
    kept = tmp_path / "s" / "trials" / "version_1" / "keep.txt"
    kept.parent.mkdir(parents=True)
    kept.write_text("mine")
    with pytest.raises(FileExistsError, match="already holds files"):
        lk.sweep(config, space, 2, tmp_path / "s")
    assert kept.read_text() == "mine"
    # An empty study.db beside trial folders: the study is gone, nothing is reused.
    (tmp_path / "s" / "study.db").write_bytes(b"")
    with pytest.raises(FileExistsError, match="holds trial runs but no study"):
        lk.sweep(config, space, 2, tmp_path / "s")


@pytest.mark.slow
def test_a_changed_input_is_named_and_reordered_overrides_are_the_same(tmp_path):
    config, space = _config(tmp_path), {BATCH: [0]}
    lk.sweep(
        config,
        space,
        1,
        tmp_path / "s",
        overrides=["--trainer.max_epochs=2", "--seed_everything=1"],
    )
    lk.sweep(
        config,
        space,
        1,
        tmp_path / "s",
        overrides=["--seed_everything=1", "--trainer.max_epochs=2"],
    )
    with pytest.raises(ValueError, match="started with different overrides"):
        lk.sweep(config, space, 1, tmp_path / "s", overrides=["--trainer.max_epochs=3"])
    same = ["--trainer.max_epochs=2", "--seed_everything=1"]
    with pytest.raises(ValueError, match="started with different search space"):
        lk.sweep(config, {BATCH: [0, 1]}, 1, tmp_path / "s", overrides=same)


def test_an_interrupted_baseline_trial_reads_as_interrupted():
    from lightkit.sweeps._summary import trial_rows

    study = optuna.create_study()
    study.enqueue_trial({BATCH: 64}, user_attrs={"baseline": True})
    trial = study.ask()
    trial.suggest_categorical(BATCH, [32, 64])
    study.tell(trial, state=optuna.trial.TrialState.FAIL)  # its process died: no reason
    (row,) = trial_rows(study, read_space({BATCH: [32, 64]}))
    assert row["state"] == "interrupted"
    assert row["reason"].startswith("baseline: the config's own values; its process stopped")


def test_the_command_takes_one_config(tmp_path, capsys):
    config, search = _files(tmp_path, SPACE)
    with pytest.raises(SystemExit) as stop:
        main(["sweep", "--config", str(config), "--config", str(config), "--search", str(search)])
    assert stop.value.code == 2
    assert "give one --config" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_without_validation_fails_its_trial_by_name(tmp_path):
    study = lk.sweep(
        _config(tmp_path), {LR: [0.01]}, 1, tmp_path / "s",
        overrides=[*QUICK, "--trainer.limit_val_batches=0"],
    )  # fmt: skip
    assert "did validation run?" in study.trials[0].user_attrs["fail_reason"]


@pytest.mark.slow
def test_sigterm_stops_the_sweep_with_its_exit_code_and_the_trial_is_run_again(tmp_path):
    config, search = _files(tmp_path, SPACE, max_epochs=1000)
    study_dir = tmp_path / "study"
    command = _lightkit(
        "sweep", "--config", str(config), "--search", str(search), "--n-trials", "2",
        "--study-dir", str(study_dir), "--trainer.patience=1000",
    )  # fmt: skip
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(study_dir.glob("trials/version_0/checkpoints/*.ckpt")):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err[-2000:]
    assert "lightkit sweep: stopped (SIGTERM)" in err
    trials = _study(study_dir).trials
    assert trials[0].state.name == "FAIL" and "fail_reason" not in trials[0].user_attrs
    assert trials[1].state.name == "WAITING"  # queued with the stopped trial's values
    assert trials[1].system_attrs["fixed_params"] == trials[0].params


@pytest.mark.slow
def test_an_out_of_memory_error_fails_its_trial_and_the_sweep_goes_on(tmp_path, monkeypatch):
    import torch

    calls = []

    def out_of_memory(self, stage=None):  # the first trial's data module runs out of memory
        calls.append(stage)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, stage)

    original = lk.data.DigitsDataModule.setup
    monkeypatch.setattr(lk.data.DigitsDataModule, "setup", out_of_memory)
    study = lk.sweep(
        _config(tmp_path), {LR: [0.003, 0.01]}, 2, tmp_path / "s", seed=0, overrides=QUICK
    )
    first, second = study.trials
    assert first.state.name == "FAIL"
    assert first.user_attrs["fail_reason"].startswith("OutOfMemoryError: CUDA out of memory")
    assert second.state.name == "COMPLETE"


@pytest.mark.slow
def test_a_nan_loss_fails_its_trial(tmp_path):
    study = lk.sweep(
        _config(tmp_path), {LR: [1.0e30]}, n_trials=1, study_dir=tmp_path / "s", overrides=QUICK
    )
    (trial,) = study.get_trials()
    assert trial.state.name == "FAIL"
    assert "NonFiniteError" in trial.user_attrs["fail_reason"]
    assert (tmp_path / "s" / trial.user_attrs["run_dir"] / "error.txt").is_file()


@pytest.mark.slow
def test_the_seed_makes_the_trials_reproducible_and_calling_again_adds_only_what_is_missing(
    tmp_path,
):
    config = _config(tmp_path)
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        study = lk.sweep(
            config, SPACE, n_trials=2, study_dir=tmp_path / name, seed=seed, overrides=QUICK
        )
        runs[name] = [t.params[LR] for t in study.trials]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]
    # n_trials counts the study's trials: asking for 3 adds one, asking for 3 again adds none.
    again = lk.sweep(config, SPACE, n_trials=3, study_dir=tmp_path / "a", seed=3, overrides=QUICK)
    assert [t.params[LR] for t in again.trials][:2] == runs["a"]
    assert len(lk.sweep(config, SPACE, 3, tmp_path / "a", seed=3, overrides=QUICK).trials) == 3
    # Another space on the same study folder is refused, not mixed in.
    with pytest.raises(ValueError, match="started with different search space"):
        lk.sweep(config, {LR: [0.01]}, 4, tmp_path / "a", overrides=QUICK)
    # best.yaml trains the best trial again, as a config of its own, in the base's run root.
    best = yaml.safe_load((tmp_path / "a" / "best.yaml").read_text())
    assert best["model"]["init_args"]["optimizer"]["init_args"]["lr"] == again.best_params[LR]
    assert best["trainer"]["default_root_dir"] == str(tmp_path / "runs")
    assert best["trainer"]["version"] is None
    for name in ("trials.csv", "history.png", "config.yaml", "search_space.yaml"):
        assert (tmp_path / "a" / name).is_file(), name
    # With the best run's own config.yaml gone, best.yaml is rebuilt from the study's inputs.
    (tmp_path / "a" / "trials" / f"version_{again.best_trial.number}" / "config.yaml").unlink()
    lk.sweep(config, SPACE, 3, tmp_path / "a", seed=3, overrides=list(reversed(QUICK)))
    rebuilt = yaml.safe_load((tmp_path / "a" / "best.yaml").read_text())
    assert rebuilt["data"] == config["data"]
    assert rebuilt["model"]["init_args"]["optimizer"]["init_args"]["lr"] == again.best_params[LR]
    assert rebuilt["trainer"]["max_epochs"] == 1  # the overrides too
    assert not list((tmp_path / "a").glob(".*.*"))  # no temporary file left behind


@pytest.mark.slow
def test_a_12_trial_digits_sweep_prunes_resumes_after_sigkill_and_beats_the_default(tmp_path):
    """The issue's test: 12 trials, some pruned, SIGKILLed midway and continued without running
    a finished trial again, and the best trial at least as good as the config's own values."""
    config, search = _files(tmp_path, SPACE)
    study_dir = tmp_path / "study"
    command = _lightkit(
        "sweep", "--config", str(config), "--search", str(search), "--n-trials", "12",
        "--study-dir", str(study_dir), "--seed", "0",
    )  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    done: list = []
    while time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.5)
        if not (study_dir / "study.db").exists():
            continue
        try:
            done = [t for t in _study(study_dir).trials if t.state.is_finished()]
        except KeyError:  # the database is there, the study not yet
            continue
        if len(done) >= 4:
            break
    assert first.poll() is None, "the sweep ended before it could be killed"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    before = {t.number: t for t in _study(study_dir).trials if t.state.is_finished()}
    assert len(before) >= 4

    assert main(command[3:]) == 0  # the same command again, in this process
    trials = _study(study_dir).trials
    for number, trial in before.items():  # finished trials kept as they were, not run again
        assert trials[number].state == trial.state
        assert trials[number].datetime_complete == trial.datetime_complete
    interrupted = [
        t for t in trials if t.state.name == "FAIL" and "fail_reason" not in t.user_attrs
    ]
    assert len(interrupted) <= 1  # the trial running at the kill, if any...
    for trial in interrupted:  # ...is run again under a new number, with its values
        (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == trial.number]
        assert retry.params == trial.params and retry.state.is_finished()
    counted = [t for t in trials if t not in interrupted]
    assert len(counted) == 12
    pruned = [t for t in counted if t.state.name == "PRUNED"]
    assert pruned
    for trial in pruned:  # the median pruner: once five trials finished, never at the first epoch
        assert trial.number >= 5 and max(trial.intermediate_values) >= 1
    # Every trial is one normal run, in its own folder.
    for trial in counted:
        run = study_dir / trial.user_attrs["run_dir"]
        assert run == study_dir / "trials" / f"version_{trial.number}"
        assert (run / "config.yaml").is_file()
    folders = {f.name for f in (study_dir / "trials").glob("version_*")}
    assert folders <= {f"version_{t.number}" for t in trials}  # none for a trial run twice

    assert main(["fit", "--config", str(config)]) == 0  # the config's own values, once
    (best_ckpt,) = (tmp_path / "runs").glob("version_*/checkpoints/best.ckpt")
    import torch

    state = torch.load(best_ckpt, map_location="cpu", weights_only=True)
    checkpointing = next(v for k, v in state["callbacks"].items() if "ModelCheckpoint" in k)
    default_value = float(checkpointing["best_model_score"])
    best = min(t.value for t in counted if t.state.name == "COMPLETE")
    assert best <= default_value + 1e-9, (best, default_value)
    # The first trial is the config's own values: the same run as the default one.
    baseline = trials[0] if "baseline" in trials[0].user_attrs else None
    if baseline is None or baseline.state.name != "COMPLETE":  # killed while it ran: retried
        (baseline,) = [t for t in trials if t.user_attrs.get("baseline") and t.state.is_finished()]
    assert baseline.params == {LR: 0.003}
    assert baseline.value == pytest.approx(default_value, rel=1e-5)
    with open(study_dir / "trials.csv", newline="") as file:
        table = list(csv.DictReader(file))
    assert {r["state"] for r in table} >= {"finished", "pruned"}
    assert json.loads((study_dir / "importance.json").read_text())


@pytest.mark.slow
def test_two_processes_share_one_study_and_run_n_trials_between_them(tmp_path):
    config, search = _files(tmp_path, SPACE)
    study_dir = tmp_path / "study"
    command = _lightkit(
        "sweep", "--config", str(config), "--search", str(search), "--n-trials", "6",
        "--study-dir", str(study_dir), "--pruner", "none", *QUICK,
    )  # fmt: skip
    processes = [
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
    trials = _study(study_dir).trials
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["process"] for t in trials}) == 2  # both worked
    folders = sorted((study_dir / "trials").glob("version_*"))
    assert [f.name for f in folders] == sorted(f"version_{n}" for n in range(6))


@pytest.mark.slow
def test_the_documented_sweep_command_runs_as_written(tmp_path, monkeypatch):
    """The command of docs/sweeps.md (shortened to one quick trial by flags added at its end)."""
    repo = Path(__file__).resolve().parents[1]
    text = (repo / "docs" / "sweeps.md").read_text().replace("\\\n", " ")
    lines = [x.strip() for x in text.splitlines() if x.strip().startswith("lightkit sweep ")]
    (line,) = [x for x in lines if "--seed" in x]  # the section's example
    argv = shlex.split(line.replace("examples/", f"{repo}/examples/"))[1:]
    monkeypatch.chdir(tmp_path)  # the config's runs/ folder goes here
    assert main([*argv, "--n-trials", "1", *QUICK]) == 0
    study_dir = tmp_path / "runs" / "digits" / "sweep"  # the default: <default_root_dir>/sweep
    (trial,) = _study(study_dir).trials
    space = yaml.safe_load((repo / "examples" / "search" / "digits.yaml").read_text())
    assert set(trial.params) == set(space)
    assert (study_dir / "trials" / "version_0" / "checkpoints" / "best.ckpt").is_file()
