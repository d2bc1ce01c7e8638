"""A running paperchat app for tests: holds one Pipeline and answers JSON commands on stdin, one per line.

Commands: {"op": "papers"}, {"op": "search", "q": ...}, {"op": "ask", "q": ...}, {"op": "quit"}.
Each reply is one JSON line: {"ok": true, ...} or {"ok": false, "error": "<type>: <message>"}; the process never
dies on a failed command, so a test sees every failure of a long-lived app (settings come from RAG_* variables).
"""

from __future__ import annotations

import json
import sys

from rag.answer import Pipeline
from rag.retrieve import make_retriever


def main() -> None:
    pipe = Pipeline()
    pipe.papers()  # build or open the index before saying ready
    print(json.dumps({"ok": True, "ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd["op"] == "quit":
                break
            if cmd["op"] == "papers":
                reply = {"papers": [p.id for p in pipe.papers()]}
            elif cmd["op"] == "search":
                docs = make_retriever(pipe.index, pipe.settings).search(cmd["q"])
                reply = {"paper_ids": [d.metadata["paper_id"] for d in docs]}
            else:
                answer = pipe.answer(cmd["q"])
                reply = {"answer": answer.answer, "paper_ids": answer.paper_ids, "abstained": answer.abstained}
            print(json.dumps({"ok": True, **reply}), flush=True)
        except Exception as exc:  # noqa: BLE001 - reported to the test, which decides
            print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}), flush=True)


if __name__ == "__main__":
    main()
