"""Processes started by torchrun or srun use rank 0's run folder: the answer travels through the
torchrun agent's TCP store or a file under the root, and is checked when read (in-process: the
ranks are played one after the other; tests/integration/test_torchrun_run_dir.py runs torchrun)."""

from __future__ import annotations

import datetime

import pytest
from lightning.pytorch.utilities import rank_zero_only
from torch.distributed import TCPStore

from lightkit.trainer import _launch
from lightkit.trainer._launch import Launch, LaunchError, agree, current_launch
from lightkit.trainer._run_dir import choose_run_dir, resume_into

LAUNCH_VARS = ("TORCHELASTIC_RUN_ID", "TORCHELASTIC_USE_AGENT_STORE", "WORLD_SIZE", "RANK",
               "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT", "SLURM_JOB_ID",
               "SLURM_NTASKS", "SLURM_PROCID", "SLURM_STEP_ID", "SLURM_JOB_NAME", "LOCAL_RANK",
               "LIGHTKIT_RUN_DIR")  # fmt: skip


@pytest.fixture
def as_rank(monkeypatch):
    """Play rank ``r`` of a launch: its rank, and the questions asked so far start again."""

    def play(rank: int, **env: str) -> None:
        for name in (*LAUNCH_VARS, "LIGHTKIT_LAUNCH_TIMEOUT"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(rank_zero_only, "rank", rank)
        monkeypatch.setattr(_launch, "_calls", {})
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    play(0)
    return play


@pytest.fixture
def agent_store():
    """A TCP store like the one the torchrun agent hosts at MASTER_ADDR:MASTER_PORT."""
    store = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False,
                     timeout=datetime.timedelta(seconds=10))  # fmt: skip
    yield store.port


def _torchrun(rank: int, port: int, restart: int = 0) -> dict[str, str]:
    return {
        "TORCHELASTIC_RUN_ID": "none", "TORCHELASTIC_USE_AGENT_STORE": "True",
        "TORCHELASTIC_RESTART_COUNT": str(restart), "WORLD_SIZE": "2", "RANK": str(rank),
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
    }  # fmt: skip


def _srun(rank: int, step: str = "0") -> dict[str, str]:
    return {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": step, "SLURM_NTASKS": "2",
            "SLURM_PROCID": str(rank), "SLURM_JOB_NAME": "train"}  # fmt: skip


def test_a_single_process_is_no_launch(as_rank, agent_store):
    assert current_launch() is None
    as_rank(0, **{**_torchrun(0, agent_store), "WORLD_SIZE": "1"})
    assert current_launch() is None
    as_rank(0, **{**_srun(0), "SLURM_NTASKS": "1"})
    assert current_launch() is None


def test_torchrun_ranks_take_rank_zeros_new_folder_from_the_agents_store(
    tmp_path, as_rank, agent_store
):
    (tmp_path / "version_3").mkdir()
    as_rank(0, **_torchrun(0, agent_store))
    assert current_launch().store_address == ("127.0.0.1", agent_store)
    assert choose_run_dir(tmp_path, None) == (tmp_path / "version_4", True)
    (tmp_path / "version_5").mkdir()  # another run meanwhile: "the next free" is no answer
    as_rank(1, **_torchrun(1, agent_store))
    assert choose_run_dir(tmp_path, None) == (tmp_path / "version_4", False)
    assert not (tmp_path / ".lightkit").exists()  # nothing written under the root


def test_each_trainer_of_a_script_and_each_restart_get_their_own_answer(
    tmp_path, as_rank, agent_store
):
    as_rank(0, **_torchrun(0, agent_store))
    first = [choose_run_dir(tmp_path, None)[0] for _ in range(2)]
    as_rank(0, **_torchrun(0, agent_store, restart=1))
    restarted = choose_run_dir(tmp_path, None)[0]
    assert [p.name for p in [*first, restarted]] == ["version_0", "version_1", "version_2"]
    as_rank(1, **_torchrun(1, agent_store))
    assert [choose_run_dir(tmp_path, None)[0] for _ in range(2)] == first
    as_rank(1, **_torchrun(1, agent_store, restart=1))
    assert choose_run_dir(tmp_path, None)[0] == restarted


def test_rank_zero_rejoining_the_same_launch_reuses_its_answer(tmp_path, as_rank, agent_store):
    as_rank(0, **_torchrun(0, agent_store))
    assert choose_run_dir(tmp_path, None) == (tmp_path / "version_0", True)
    as_rank(0, **_torchrun(0, agent_store))  # the same key again (a new rendezvous round)
    assert choose_run_dir(tmp_path, None) == (tmp_path / "version_0", False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["version_0"]


def test_srun_ranks_read_rank_zeros_folder_from_a_file_under_the_root(tmp_path, as_rank):
    (tmp_path / "version_0").mkdir()
    as_rank(0, **_srun(0))
    assert current_launch().name == "srun"
    assert choose_run_dir(tmp_path, None) == (tmp_path / "version_1", True)
    (tmp_path / "version_2").mkdir()
    as_rank(1, **_srun(1))
    assert choose_run_dir(tmp_path, None) == (tmp_path / "version_1", False)
    as_rank(1, **_srun(1, step="1"))  # the next job step is another launch
    (tmp_path / ".lightkit" / "launches" / "srun-4242.1-0").mkdir(parents=True)
    (tmp_path / ".lightkit" / "launches" / "srun-4242.1-0" / "run_dir-0").write_text("2")
    assert choose_run_dir(tmp_path, None) == (tmp_path / "version_2", False)


@pytest.mark.parametrize("answer", ["../../x", "1/../../x", "", "-1", "1e3"])
def test_an_answer_that_is_no_number_is_refused(tmp_path, as_rank, answer):
    marker = tmp_path / ".lightkit" / "launches" / "srun-4242.0-0" / "run_dir-0"
    marker.parent.mkdir(parents=True)
    marker.write_text(answer)
    as_rank(1, **_srun(1))
    with pytest.raises(LaunchError, match="expected digits"):
        choose_run_dir(tmp_path, None)


def test_a_rank_waits_for_rank_zero_then_says_why_it_stops(tmp_path, as_rank, agent_store):
    as_rank(1, **_torchrun(1, agent_store), LIGHTKIT_LAUNCH_TIMEOUT="0.3")
    with pytest.raises(LaunchError, match=r"rank 1 .* agent's store .* LIGHTKIT_LAUNCH_TIMEOUT"):
        choose_run_dir(tmp_path, None)
    as_rank(1, **_srun(1), LIGHTKIT_LAUNCH_TIMEOUT="0.3")
    with pytest.raises(LaunchError, match="shared file system"):
        choose_run_dir(tmp_path, None)
    as_rank(1, **_srun(1), LIGHTKIT_LAUNCH_TIMEOUT="soon")
    with pytest.raises(ValueError, match="LIGHTKIT_LAUNCH_TIMEOUT='soon'"):
        choose_run_dir(tmp_path, None)


def test_rank_zeros_failure_reaches_the_other_ranks(tmp_path, as_rank, agent_store):
    (tmp_path / "file").write_text("")
    as_rank(0, **_torchrun(0, agent_store))
    with pytest.raises(NotADirectoryError):
        choose_run_dir(tmp_path / "file", None)
    as_rank(1, **_torchrun(1, agent_store), LIGHTKIT_LAUNCH_TIMEOUT="5")
    with pytest.raises(LaunchError, match=r"rank 0 .* failed .*NotADirectoryError"):
        choose_run_dir(tmp_path / "file", None)


def test_a_numbered_version_needs_no_agreement(tmp_path, as_rank):
    as_rank(1, **_srun(1), LIGHTKIT_LAUNCH_TIMEOUT="0.1")
    assert choose_run_dir(tmp_path, 7) == (tmp_path / "version_7", False)


def test_resume_continues_the_checkpoint_rank_zero_found(tmp_path, as_rank, agent_store):
    from helpers import mlp_run

    mlp_run(tmp_path, logger=False)  # runs/version_0 with checkpoints
    root = tmp_path / "runs"
    as_rank(0, **_torchrun(0, agent_store))
    kwargs = {"default_root_dir": root}
    found, _ = resume_into(kwargs)
    assert found == str(root / "version_0" / "checkpoints" / "last.ckpt")
    assert kwargs["version"] == 0
    (root / "version_0" / "checkpoints" / "last.ckpt").unlink()  # rank 1 must not look
    as_rank(1, **_torchrun(1, agent_store))
    kwargs = {"default_root_dir": root}
    assert resume_into(kwargs) == (found, "")
    assert kwargs["version"] == 0


def test_a_resume_answer_naming_another_folder_is_refused(tmp_path, as_rank):
    marker = tmp_path / ".lightkit" / "launches" / "srun-4242.0-0" / "resume-0"
    marker.parent.mkdir(parents=True)
    marker.write_text("0/../../../etc/passwd.ckpt")
    as_rank(1, **_srun(1))
    with pytest.raises(LaunchError, match=r"expected '<run number>/<file name>\.ckpt'"):
        resume_into({"default_root_dir": tmp_path})


def test_agree_publishes_once_per_question(tmp_path, as_rank, agent_store):
    launch = Launch("torchrun", "k", 0, 2, ("127.0.0.1", agent_store))
    as_rank(0)
    assert agree(launch, "q", tmp_path, lambda: "a") == "a"
    as_rank(1)
    follower = Launch("torchrun", "k", 1, 2, ("127.0.0.1", agent_store))
    assert agree(follower, "q", tmp_path, lambda: pytest.fail("only rank 0 decides")) == "a"


@pytest.mark.parametrize("rank", [0, 1])
def test_memory_urls_are_refused_under_a_launch(rank, as_rank, agent_store):
    import lightkit as lk

    # each process has its own memory://: rank 1 would wait for a folder it can never see
    as_rank(rank, **_torchrun(rank, agent_store), LIGHTKIT_LAUNCH_TIMEOUT="0.5")
    with pytest.raises(ValueError, match=r"memory://.*each process keeps to itself.*torchrun"):
        lk.make_trainer(default_root_dir="memory://launch-runs")
    as_rank(rank, **_srun(rank), LIGHTKIT_LAUNCH_TIMEOUT="0.5")
    with pytest.raises(ValueError, match=r"memory://.*srun launch \(2 in all\)"):
        lk.make_trainer(default_root_dir="memory://launch-runs")
