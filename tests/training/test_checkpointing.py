"""Atomic checkpoints, RNG capture/restore and resumable sampling."""

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler, TensorDataset

from geo_neuralop.training import Trainer, TrainerConfig
from geo_neuralop.training.checkpointing import (
    FORMAT,
    VERSION,
    CheckpointManager,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    state_is_finite,
)
from geo_neuralop.training.distributed import ResumableDistributedSampler, ShardSampler


def _draws():
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(),  # noqa: NPY002
            [random.random() for _ in range(3)], np.random.randn(1).tolist())  # noqa: NPY002


def test_rng_state_roundtrip_through_a_weights_only_file(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)  # noqa: NPY002
    random.seed(3)
    np.random.randn(1)  # noqa: NPY002 (leave a cached Gaussian in NumPy's state)
    save_checkpoint(tmp_path / "rng.pt", {"rng": capture_rng_state()})
    expected = _draws()
    _draws()  # move every generator on
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])  # weights_only=True
    assert _draws() == expected


def test_model_optimizer_roundtrip_continues_identically(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3),
                                torch.nn.Linear(8, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    data = torch.randn(16, 4)

    def step():
        opt.zero_grad()
        loss = model(data).pow(2).mean()
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    save_checkpoint(tmp_path / "c.pt", {"model": model.state_dict(), "opt": opt.state_dict(),
                                        "rng": capture_rng_state()})
    reference = [step() for _ in range(3)]
    state = load_checkpoint(tmp_path / "c.pt")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    restore_rng_state(state["rng"])
    assert [step() for _ in range(3)] == reference  # bitwise, dropout included


def test_failed_write_leaves_the_old_file_and_no_debris(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 1})

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_manager_keeps_previous_and_falls_back_on_a_damaged_last(tmp_path, caplog):
    manager = CheckpointManager(tmp_path / "ckpts")
    assert manager.load_latest() is None and not manager.exists()
    manager.save({"step": 1})
    manager.save({"step": 2}, best=True)
    manager.save({"step": 3})
    assert manager.load_latest()["step"] == 3
    assert load_checkpoint(manager.previous_path)["step"] == 2
    assert load_checkpoint(manager.best_path)["step"] == 2
    # cut the last file in half (as a broken disk would): fall back to previous.pt
    data = manager.last_path.read_bytes()
    manager.last_path.write_bytes(data[: len(data) // 2])
    with caplog.at_level("WARNING"):
        state = manager.load_latest()
    assert state["step"] == 2 and state["_path"].endswith("previous.pt")
    assert "not readable" in caplog.text
    with pytest.raises(ValueError, match="not readable"):
        load_checkpoint(manager.last_path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_state_is_finite_looks_into_nested_state():
    assert state_is_finite({"a": torch.ones(2), "b": {"c": torch.zeros(1), "n": 3}})
    assert not state_is_finite({"a": torch.ones(2), "b": {"c": torch.tensor([float("nan")])}})
    assert state_is_finite({"i": torch.tensor([1, 2])})


@pytest.mark.parametrize("world", [1, 2, 3])
def test_resumable_sampler_matches_torch_and_resumes_mid_epoch(world):
    data = list(range(23))
    for rank in range(world):
        ours = ResumableDistributedSampler(data, num_replicas=world, rank=rank, seed=5)
        ref = DistributedSampler(data, num_replicas=world, rank=rank, seed=5)
        for epoch in (0, 3):
            ours.set_epoch(epoch)
            ref.set_epoch(epoch)
            full = list(ours)
            assert full == list(ref)
            ours.set_start(4)
            assert list(ours) == full[4:] and len(ours) == len(full) - 4
            state = ours.state_dict()
            other = ResumableDistributedSampler(data, num_replicas=world, rank=rank, seed=5)
            other.load_state_dict(state)
            assert list(other) == full[4:]
            ours.set_start(0)
    # every rank's share together is one global permutation (padded to a multiple of world)
    union = [i for r in range(world)
             for i in ResumableDistributedSampler(data, num_replicas=world, rank=r, seed=5)]
    assert set(union) == set(data)
    with pytest.raises(ValueError, match="start"):
        ResumableDistributedSampler(data, num_replicas=1, rank=0).set_start(99)


def test_shard_sampler_covers_each_sample_once():
    data = list(range(10))
    shards = [list(ShardSampler(data, 3, r)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == data
    assert [len(ShardSampler(data, 3, r)) for r in range(3)] == [4, 3, 3]


def test_trainer_refuses_version_1_training_checkpoints(tmp_path):
    data = TensorDataset(torch.randn(4, 2), torch.randn(4, 2))
    cfg = TrainerConfig(epochs=1, batch_size=2, out_dir=str(tmp_path), progress=False)

    def trainer():
        return Trainer(torch.nn.Linear(2, 2), data, loss=torch.nn.MSELoss(), config=cfg)

    trainer().fit()
    last = tmp_path / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    assert state["format"] == FORMAT and state["version"] == VERSION == 2
    trainer().load_state_dict(state)  # the current version is accepted
    with pytest.raises(ValueError, match="format version"):
        trainer().load_state_dict({**state, "version": 1})
    # a version-1 file on disk is refused on resume too
    save_checkpoint(last, {**state, "version": 1})
    with pytest.raises(ValueError, match="format version 1"):
        trainer().fit(resume=True)
