"""Data-parallel training with torchrun: 2 CPU processes (gloo) equal one process on the same
global batch; helpers degrade to a single process without torchrun."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from geo_neuralop.training.checkpointing import load_checkpoint
from geo_neuralop.training.distributed import (
    all_reduce_sum,
    barrier,
    get_rank,
    get_world_size,
    init_distributed,
    is_distributed,
    is_main_process,
    unwrap_model,
    wrap_model,
)
from geo_neuralop.training.metrics import read_jsonl

REPO = Path(__file__).resolve().parents[2]

# float64 so that the only difference between 1 and 2 processes (the order in which the
# gradient means are summed) stays at round-off level
WORKER = textwrap.dedent('''
    import functools, json, os, signal, sys
    from pathlib import Path
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from geo_neuralop.geometry import GridSpec
    from geo_neuralop.training import LpLoss, Trainer, TrainerConfig, error_metrics
    from geo_neuralop.training.distributed import get_rank, get_world_size, is_main_process

    def build(out_dir):
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(5)
        x = torch.randn(40, 2, 12, generator=g, dtype=torch.float64)
        y = torch.stack([x[:, 0].roll(1, -1) - x[:, 1], torch.tanh(x[:, 0] + x[:, 1])], 1)
        model = nn.Sequential(nn.Conv1d(2, 8, 3, padding=1, padding_mode="circular"), nn.Tanh(),
                              nn.Conv1d(8, 2, 3, padding=1, padding_mode="circular")).double()
        cfg = TrainerConfig(epochs=2, batch_size=8, lr=1e-2, grad_clip=0.5, warmup_steps=2,
                            out_dir=str(out_dir), seed=3, progress=False, device="cpu")
        grid = GridSpec((12,), periodic=True)
        return Trainer(model, TensorDataset(x[:32], y[:32]), TensorDataset(x[32:], y[32:]),
                       LpLoss(quadrature=grid), cfg,
                       metric_fn=functools.partial(error_metrics, quadrature=grid))

    if __name__ == "__main__":
        torch.set_num_threads(1)
        out_dir, report_dir, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
        trainer = build(out_dir)
        seen = []
        trainer.step_callbacks.append(lambda tr, info: seen.append(
            [get_rank(), get_world_size(), is_main_process(), type(tr.ddp_model).__name__]))

        def sigterm_on_rank1(tr, info):  # only one process gets the signal; both must stop
            if mode == "sigterm" and get_rank() == 1 and info["global_step"] == 3:
                os.kill(os.getpid(), signal.SIGTERM)

        trainer.step_callbacks.append(sigterm_on_rank1)
        history = trainer.fit(resume=mode == "resume")
        rank = int(os.environ["RANK"])
        torch.save(trainer.model.state_dict(), report_dir / f"weights{rank}.pt")
        env = {k: os.environ.get(k) for k in ("RANK", "LOCAL_RANK", "GROUP_RANK", "WORLD_SIZE",
                                              "LOCAL_WORLD_SIZE")}
        (report_dir / f"report{rank}.json").write_text(json.dumps(
            {"seen": seen[0], "steps": len(seen), "history": history, "env": env,
             "info": [trainer.info.rank, trainer.info.local_rank, trainer.info.node_rank,
                      trainer.info.world_size, trainer.info.local_world_size]}))
''')


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _torchrun(script, out_dir, reports, mode):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
         "--nproc_per_node=2", str(script), str(out_dir), str(reports), mode],
        env=env, capture_output=True, text=True, timeout=300,
    )


def _single_process_run(tmp_path):
    """The same training in this process (one process, same data and global batch)."""
    script = tmp_path / "ddp_worker.py"
    script.write_text(WORKER)
    sys.path.insert(0, str(tmp_path))
    try:
        import ddp_worker
    finally:
        sys.path.remove(str(tmp_path))
    single = ddp_worker.build(tmp_path / "single")
    return script, single, single.fit()


def test_two_gloo_processes_match_one_process_on_the_same_global_batch(tmp_path):
    script, single, single_history = _single_process_run(tmp_path)
    reports = tmp_path / "reports"
    reports.mkdir()
    proc = _torchrun(script, tmp_path / "ddp", reports, "run")
    assert proc.returncode == 0, proc.stderr[-4000:]

    w0 = torch.load(reports / "weights0.pt", weights_only=True)
    w1 = torch.load(reports / "weights1.pt", weights_only=True)
    for name, value in single.model.state_dict().items():
        assert torch.equal(w0[name], w1[name]), f"ranks differ in {name}"
        torch.testing.assert_close(w0[name], value, rtol=1e-12, atol=1e-12)
    r0 = json.loads((reports / "report0.json").read_text())
    r1 = json.loads((reports / "report1.json").read_text())
    assert r0["seen"] == [0, 2, True, "DistributedDataParallel"]
    assert r1["seen"] == [1, 2, False, "DistributedDataParallel"]
    assert r0["steps"] == r1["steps"] == 2 * 4  # 32 samples, global batch 8, 2 epochs
    for key in ("train_loss", "val_loss", "val_rel_l2", "val_abs_h1/1", "lr"):
        for a, b, c in zip(r0["history"], r1["history"], single_history, strict=True):
            assert a[key] == b[key]  # all ranks report the same all-reduced metrics
            assert a[key] == pytest.approx(c[key], rel=1e-12, abs=1e-14)
    # only rank 0 wrote files: one metric line per epoch, one checkpoint with the weights
    assert [r["epoch"] for r in read_jsonl(tmp_path / "ddp" / "metrics.jsonl")] == [1, 2]
    ckpt = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    assert ckpt["sampler"]["world_size"] == 2
    for name, value in w0.items():
        assert torch.equal(ckpt["model"][name], value)


def _free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_machines_through_a_c10d_rendezvous_match_one_process(tmp_path):
    """Multi-node torchrun as on a cluster: two launchers (one per "machine", one process
    each) meet at a c10d rendezvous endpoint, as the README's SLURM script starts them. Each
    process sees its machine index and local rank, and the training equals one process on
    the same global batch."""
    script, single, single_history = _single_process_run(tmp_path)
    reports = tmp_path / "reports"
    reports.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    endpoint = f"127.0.0.1:{_free_port()}"
    launchers = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
         "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}", "--rdzv_id=geo_neuralop_test",
         f"--node_rank={node}", "--max_restarts=0", str(script), str(tmp_path / "ddp"),
         str(reports), "run"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for node in (0, 1)]
    outputs = [p.communicate(timeout=300) for p in launchers]
    for p, (_, err) in zip(launchers, outputs, strict=True):
        assert p.returncode == 0, err[-4000:]
    reports_by_rank = [json.loads((reports / f"report{r}.json").read_text()) for r in (0, 1)]
    # one process per machine: local rank 0 on both, machine indices 0 and 1
    assert sorted(tuple(r["info"][:3]) for r in reports_by_rank) == [(0, 0, 0), (1, 0, 1)]
    for r in reports_by_rank:
        assert r["env"]["WORLD_SIZE"] == "2" and r["env"]["LOCAL_WORLD_SIZE"] == "1"
        assert r["info"][3:] == [2, 1]
    w0 = torch.load(reports / "weights0.pt", weights_only=True)
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(w0[name], value, rtol=1e-12, atol=1e-12)
    for a, c in zip(reports_by_rank[0]["history"], single_history, strict=True):
        assert a["val_loss"] == pytest.approx(c["val_loss"], rel=1e-12, abs=1e-14)


def test_helpers_without_torchrun(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    info = init_distributed(device="cpu")
    assert (info.rank, info.world_size, info.backend, info.is_main) == (0, 1, None, True)
    assert (info.node_rank, info.local_world_size) == (0, 1)
    assert not is_distributed() and is_main_process()
    assert get_rank() == 0 and get_world_size() == 1
    barrier()  # no-op
    model = torch.nn.Linear(2, 2)
    assert wrap_model(model, info) is model and unwrap_model(model) is model
    t = torch.ones(3)
    assert all_reduce_sum(t) is t


def test_torchrun_environment_errors(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="RANK is not set"):
        init_distributed(device="cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer"):
        init_distributed(device="cpu")


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_and_resume_matches(tmp_path):
    script, single, single_history = _single_process_run(tmp_path)
    reports = tmp_path / "reports"
    reports.mkdir()
    stopped = _torchrun(script, tmp_path / "ddp", reports, "sigterm")
    assert stopped.returncode != 0
    assert stopped.stderr.count("exitcode  : 143") == 2, stopped.stderr[-4000:]
    state = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    # rank 1 was signalled after step 3; the processes agree on stopping after step 4
    assert state["progress"]["global_step"] == 4
    resumed = _torchrun(script, tmp_path / "ddp", reports, "resume")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    w0 = torch.load(reports / "weights0.pt", weights_only=True)
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(w0[name], value, rtol=1e-12, atol=1e-12)
    history = json.loads((reports / "report0.json").read_text())["history"]
    for a, c in zip(history, single_history, strict=True):
        assert a["train_loss"] == pytest.approx(c["train_loss"], rel=1e-12)
        assert a["val_loss"] == pytest.approx(c["val_loss"], rel=1e-12)
