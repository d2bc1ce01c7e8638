"""Time `paperchat chat` from process start to HTTP 200 against a bare Gradio app measured in the same run.

    RAG_DATA_DIR=<an index> python tools/chat_ready.py [--runs 3]

Both run interleaved in fresh processes; the bare app (one Markdown block, the same launch options) is the floor no
Gradio chat can beat: importing Gradio and starting its server.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from rag.proc import free_port, stop_process, wait_http

FLOOR = ("import time, gradio as gr\nwith gr.Blocks() as d: gr.Markdown('x')\n"
         "d.launch(server_port={port}, server_name='127.0.0.1', prevent_thread_lock=True, quiet=True)\ntime.sleep(120)")


def ready(cmd: list[str], port: int, limit: float = 120.0) -> float:
    """Seconds from starting cmd until http://127.0.0.1:port/ answers 200."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    try:
        wait_http(f"http://127.0.0.1:{port}/", limit, proc=proc, status=200, interval=0.05)
        return time.perf_counter() - t0
    finally:
        stop_process(proc, 10)


def main() -> None:
    """Print each run and the minimum of both, with their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ours, floor = [], []
    paperchat = os.path.join(os.path.dirname(sys.executable), "paperchat")
    for _ in range(args.runs):
        port = free_port()
        ours.append(ready([paperchat, "chat", "--port", str(port)], port))
        port = free_port()
        floor.append(ready([sys.executable, "-c", FLOOR.format(port=port)], port))
        sys.stdout.write(f"paperchat chat {ours[-1]:.2f} s · bare Gradio app {floor[-1]:.2f} s\n")
    sys.stdout.write(f"min: paperchat chat {min(ours):.2f} s, floor {min(floor):.2f} s, "
                     f"ratio {min(ours) / min(floor):.2f}\n")


if __name__ == "__main__":
    main()
