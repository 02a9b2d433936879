"""How fast the guards refuse inputs that used to exhaust memory or hang (RELIABILITY.md M52,
K31, D40), and at what memory.

Each case runs in a fresh process under a 6 GB address-space cap (so a regression fails
instead of taking the machine down) and reports the seconds and peak RSS until the error:

- ``checkpoint``: a 25 KB model file whose config asks for a ~57 GB FNO (hidden 512, modes
  32x32, 50 layers), with a valid digest, so only the shape check can tell;
- ``local_sfno``: ``LocalSFNO(disco_radius=3.0)`` on a 64 x 128 grid: the ring path builds
  only the output meridians' stencils (64 x 8192 pairs), so it now runs, in bounded memory;
- ``local_sfno_sparse``: the same model on its per-point kernels (``ring_fft = False``,
  6.6e7 kernel edges), refused by the edge estimate;
- ``card``: a dataset card listing ``../../../../../../dev/zero`` (killed after 30 s).

Run: ``python benchmarks/reliability_guards.py`` (results in ``benchmarks/results/``). To
see the behaviour of another revision, run it with ``PYTHONPATH`` pointing at that tree.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from common import machine, write_results

CAP_BYTES = 6 * 2**30

SETUP = {
    "checkpoint": """
        from geo_neuralop.models import get_model, save_model, load_model
        try:
            from geo_neuralop.utils.digest import payload_digest
        except ImportError:  # revisions before the shared digest
            from geo_neuralop.models.checkpoint import _checksum as payload_digest
        m = get_model("fno", in_channels=1, out_channels=1, n_modes=[4, 4], hidden_channels=8,
                      n_layers=2)
        save_model(m, tmp / "m.pt")
        p = torch.load(tmp / "m.pt", weights_only=True)
        p["config"].update(hidden_channels=512, n_modes=[32, 32], n_layers=50)
        p["sha256"] = payload_digest(p)
        torch.save(p, tmp / "m.pt")
        run = lambda: load_model(tmp / "m.pt")
    """,
    "local_sfno": """
        from geo_neuralop.models import LocalSFNO
        model = LocalSFNO(1, 1, lmax=32, hidden_channels=4, n_layers=1, disco_radius=3.0)
        x = torch.randn(1, 1, 64, 128)
        run = lambda: model(x)
    """,
    "local_sfno_sparse": """
        from geo_neuralop.models import LocalSFNO
        model = LocalSFNO(1, 1, lmax=32, hidden_channels=4, n_layers=1, disco_radius=3.0)
        model.ring_fft = False
        x = torch.randn(1, 1, 64, 128)
        run = lambda: model(x)
    """,
    "card": """
        import yaml
        from geo_neuralop.data import generate_dataset, load_dataset
        generate_dataset("darcy", tmp / "d", 3, params={"resolution": 9}, progress=False,
                         log=None)
        card = yaml.safe_load((tmp / "d" / "card.yaml").read_text())
        card["files"]["../../../../../../dev/zero"] = {"bytes": 0, "sha256": "0" * 64}
        (tmp / "d" / "card.yaml").write_text(yaml.safe_dump(card))
        run = lambda: load_dataset(tmp / "d", "train")
        def stop(*_):
            raise TimeoutError("still reading after 30 s")
        signal.signal(signal.SIGALRM, stop)
        signal.alarm(30)
    """,
}

CHILD = """
import json, pathlib, resource, shutil, signal, tempfile, time
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
import torch
torch.set_num_threads(1)
tmp = pathlib.Path(tempfile.mkdtemp())
{setup}
start = time.perf_counter()
try:
    run()
    outcome = "no error"
except BaseException as error:
    outcome = f"{{type(error).__name__}}: {{str(error)[:160]}}"
seconds = time.perf_counter() - start
shutil.rmtree(tmp, ignore_errors=True)
print(json.dumps({{"seconds": seconds, "outcome": outcome,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}}))
"""


def run_case(name: str) -> dict:
    code = CHILD.format(cap=CAP_BYTES, setup=textwrap.dedent(SETUP[name]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": f"exit code {proc.returncode}: {proc.stderr[-300:]}"}
    return json.loads(lines[-1])


def main() -> None:
    results = {name: run_case(name) for name in SETUP}
    rows = ["| case | seconds to the error (or the result) | peak RSS (GB) | outcome |",
            "|---|---|---|---|"]
    for name, r in results.items():
        if "error" in r:
            rows.append(f"| {name} | - | - | {r['error']} |")
        else:
            outcome = r["outcome"].replace("|", "/")[:110]
            rows.append(f"| {name} | {r['seconds']:.3f} | {r['peak_rss_gb']:.2f} | {outcome} |")
    markdown = ("# Guards against memory blow-ups and hangs\n\n"
                f"6 GB address-space cap per case; {machine()['platform']}\n\n"
                + "\n".join(rows) + "\n")
    write_results("reliability_guards", {"machine": machine(), "results": results}, markdown)


if __name__ == "__main__":
    main()
