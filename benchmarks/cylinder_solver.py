"""Cylinder-flow FEM solver speed: ms per step and CPU seconds per 100-frame trajectory.

Run: ``.venv/bin/python benchmarks/cylinder_solver.py [--quick]``. Writes
``benchmarks/results/cylinder_solver.{json,md}``.

Part 1 times the P2-P1 pressure-correction step on the default mesh (about 2.2k
vertices) with dt = 0.005 in the DFG 2D-2 setting (Re = 100), after 1 s of spin-up
(shedding), over windows of 25 steps: CPU time (``time.process_time``) and wall
time, median and best window (the machine is shared, so the best window is the
closest to an idle machine). Part 2 runs ``simulate_cylinder_flow`` with the default
dataset settings (100 frames) at Re = 60, 100 and 200 and reports CPU seconds per
trajectory (mesh, assembly and time stepping included); the issue's target is at
most 20 s. Each measurement runs in a fresh single-threaded process.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt, machine, write_results  # noqa: E402


def _single_thread() -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"


def _step_timing(spin_up_steps: int, windows: int, queue) -> None:
    _single_thread()
    import numpy as np

    from geo_neuralop.data.solvers.cylinder_mesh import cylinder_channel_mesh
    from geo_neuralop.data.solvers.navier_stokes_fem import NavierStokesSolver

    mesh = cylinder_channel_mesh()
    solver = NavierStokesSolver(mesh, nu=1e-3, u_max=1.5, dt=0.005, ramp_time=0.25,
                                spin_perturbation=0.5)
    for _ in range(spin_up_steps):
        solver.step()
        solver.forces()
    refreshes, iterations = solver.lu_refreshes, solver.krylov_iterations
    cpu, wall = [], []
    for _ in range(windows):
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(25):
            solver.step()
            solver.forces()
        cpu.append((time.process_time() - c0) / 25)
        wall.append((time.perf_counter() - w0) / 25)
    steps = 25 * windows
    queue.put({
        "n_vertices": int(mesh.n_vertices), "n_velocity_dofs": int(2 * solver.n_u),
        "n_pressure_dofs": int(solver.n_p), "courant": float(solver.courant),
        "setup_s": solver.setup_seconds,
        "cpu_ms_median": 1e3 * float(np.median(cpu)), "cpu_ms_best": 1e3 * min(cpu),
        "wall_ms_median": 1e3 * float(np.median(wall)), "wall_ms_best": 1e3 * min(wall),
        "gmres_iterations_per_step": (solver.krylov_iterations - iterations) / steps,
        "steps_per_factorisation": steps / max(solver.lu_refreshes - refreshes, 1),
    })


def _trajectory(reynolds: float, n_frames: int, queue) -> None:
    _single_thread()
    from geo_neuralop.data.solvers.cylinder_flow import simulate_cylinder_flow

    c0, w0 = time.process_time(), time.perf_counter()
    result = simulate_cylinder_flow(reynolds, n_frames=n_frames)
    queue.put({
        "reynolds": reynolds, "n_frames": n_frames, "cpu_s": time.process_time() - c0,
        "wall_s": time.perf_counter() - w0, "n_steps": result.attrs["n_steps"],
        "spin_up": result.attrs["spin_up"], "frame_interval": result.attrs["frame_interval"],
        "ms_per_step_wall": result.attrs["ms_per_step"],
        "lift_amplitude_last_frames": float(abs(result.lift[-200:]).max()),
    })


def _run(target, *args, timeout: float = 1200.0) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        return {"error": f"timed out after {timeout:.0f} s"}
    return queue.get() if not queue.empty() else {"error": f"exit code {proc.exitcode}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer timing windows and one trajectory of 20 frames")
    args = parser.parse_args()
    load = os.getloadavg()
    step = _run(_step_timing, 40 if args.quick else 200, 4 if args.quick else 12)
    print("step:", step, flush=True)
    cases = [(100.0, 20)] if args.quick else [(60.0, 100), (100.0, 100), (200.0, 100)]
    trajectories = []
    for reynolds, frames in cases:
        trajectories.append(_run(_trajectory, reynolds, frames))
        print("trajectory:", trajectories[-1], flush=True)

    lines = [
        "# Cylinder-flow solver (P2-P1 Taylor-Hood, BDF2 pressure correction)",
        "",
        f"Machine: {machine()}; load average at start {load[0]:.2f} (shared machine: "
        "other jobs ran at the same time, so timings are upper bounds). One thread per "
        "process.",
        "",
        "## Time step on the default mesh (DFG 2D-2, Re = 100, dt = 0.005)",
        "",
    ]
    if "error" in step:
        lines.append(f"failed: {step['error']}")
    else:
        lines += [
            "| vertices | velocity dofs | pressure dofs | Courant | CPU ms/step median | "
            "CPU ms/step best window | wall ms/step median | GMRES its/step | "
            "steps per LU |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {step['n_vertices']} | {step['n_velocity_dofs']} | {step['n_pressure_dofs']} "
            f"| {fmt(step['courant'])} | {fmt(step['cpu_ms_median'])} | "
            f"{fmt(step['cpu_ms_best'])} | {fmt(step['wall_ms_median'])} | "
            f"{fmt(step['gmres_iterations_per_step'])} | "
            f"{fmt(step['steps_per_factorisation'])} |",
        ]
    lines += [
        "",
        "## One trajectory with the default dataset settings (`simulate_cylinder_flow`)",
        "",
        "| Re | frames | steps | spin-up (s) | frame interval (s) | CPU s | wall s | "
        "target CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in trajectories:
        if "error" in row:
            lines.append(f"| failed: {row['error']} | | | | | | | |")
            continue
        lines.append(
            f"| {row['reynolds']:g} | {row['n_frames']} | {row['n_steps']} | "
            f"{row['spin_up']:g} | {row['frame_interval']:g} | {fmt(row['cpu_s'])} | "
            f"{fmt(row['wall_s'])} | 20 |")
    lines.append("")
    payload = {"machine": machine(), "load_average": list(load), "step": step,
               "trajectories": trajectories}
    write_results("cylinder_solver" + ("_quick" if args.quick else ""), payload,
                  "\n".join(lines))


if __name__ == "__main__":
    main()
