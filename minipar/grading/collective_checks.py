"""Grading a collective: launch ``minipar.grading.mpi_worker`` under mpiexec at several numbers of
ranks, read every rank's records, and judge them together.

Per number of ranks p, four checks:

    finishes     every case ran to the end on every rank: no exception, no deadlock (a wait
                 past --timeout seconds), no job killed for running past its wall time
    results      every rank holds the right answer, in the buffer it was given
    identical    every rank holds the same bits (else replicas drift apart in training)
    messages     the data travelled as minipar point-to-point messages, every message sent
                 was received, and -- for the ring and tree tasks -- in the algorithm's pattern

The patterns each task must show are in ``pattern_checks.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from minipar.grading import mpi_worker
from minipar.grading.mpi_worker import cases, describe
from minipar.grading.pattern_checks import calls_problem, messages, pattern_note
from minipar.comm.launch import find_mpiexec

ROOT = Path(__file__).resolve().parent.parent
WALL_BASE = 30.0  # seconds a job may take beyond 3 x --timeout before it is killed


def launch(task, target, p, timeout, wall):
    """Run the worker on p ranks; returns (records per rank, exit status or None if killed,
    output tail)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), str(ROOT), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory(prefix="minipar-check-") as out:
        cmd = [find_mpiexec(), "-n", str(p), sys.executable, "-m", mpi_worker.__name__, task,
               target, "--out", out, "--timeout", str(timeout)]
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, env=env, start_new_session=True)
        except FileNotFoundError:
            return [[] for _ in range(p)], -1, f"{cmd[0]} not found: pip install mpich"
        try:
            text, status = proc.communicate(timeout=wall)[0], proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # mpiexec and every rank with it
            text, status = proc.communicate()[0], None
        records = []
        for r in range(p):
            path = os.path.join(out, f"rank{r}.jsonl")
            lines = open(path).read().splitlines() if os.path.exists(path) else []
            records.append([json.loads(s) for s in lines if s.strip()])
    return records, status, "\n".join((text or "").strip().splitlines()[-12:])


def _stall_line(text: str) -> str:
    m = re.match(r"rank (\d+): (.*?) on \S+ \(tag (-?\d+)", text)
    if not m:
        return text.splitlines()[0]
    tag = "any tag" if m.group(3) == "-1" else f"tag {m.group(3)}"
    return f"rank {m.group(1)} waited in {m.group(2)} ({tag})"


def _recent(text: str) -> str:
    """The student's last calls before the stall (the grader's own calls left out)."""
    calls = [s.strip() for s in text.splitlines()[1:] if "(student)" in s][-3:]
    calls = [re.sub(r"\s+\[.*\]$", "", c).replace(" (student)", "") for c in calls]
    return ("; last calls before that: " + " | ".join(calls)) if calls else ""


_SELF_WAIT = re.compile(r"rank (\d+) waited in (\w+) with r(\d+)")


def _stall_hint(stalls) -> str | None:
    for _, s in stalls:
        m = _SELF_WAIT.search(_stall_line(s))
        if m and m.group(1) == m.group(3):
            return (f"rank {m.group(1)} waited in {m.group(2)} with itself: a rank computed "
                    f"relative to the root, (r - root) mod p, was used as a real rank; turn "
                    f"it back with (rel + root) mod p before sending or receiving")
    ops = {re.sub(r" inside .*", "", _stall_line(s).split(" waited in ")[-1].split(" with")[0])
           for _, s in stalls}
    if ops and ops <= {"send", "isend"}:
        return ("every stuck rank is sending and none is receiving: MPI holds a small message "
                "for you, but a large one waits for its receive; use sendrecv, or let even "
                "ranks send first and odd ranks receive first")
    if ops and ops <= {"recv", "irecv"}:
        return "every stuck rank is waiting to receive, so nobody ever sends: send first somewhere"
    return None


def grade_p(task, p, records, status, tail, wall, report, seen, own=False):
    """Add the four checks for p ranks to ``report``; note right/wrong cases in ``seen``."""
    name = f"{p} rank{'s' if p > 1 else ''}"
    plan = cases(task, p)
    per_case = [dict() for _ in plan]
    stray = [dict() for _ in plan]  # case -> {rank: [(source, tag, bytes)]} never received
    ends = {}
    for r, recs in enumerate(records):
        for rec in recs:
            if "stray_of" in rec:
                stray[rec["stray_of"]][r] = rec["stray"]
            elif "case" in rec and "end" not in rec:
                per_case[rec["case"]][r] = rec
            elif "end" in rec:
                ends[r] = rec
    done = [i for i, c in enumerate(per_case) if len(c) == p
            and all(x["error"] is None and x["stall"] is None for x in c.values())]
    # -- finishes
    problem = None
    for i, c in enumerate(per_case):
        errs = [(r, x["error"]) for r, x in sorted(c.items()) if x["error"]]
        stalls = [(r, x["stall"]) for r, x in sorted(c.items()) if x["stall"]]
        if errs:
            texts = sorted({e for _, e in errs})
            who = ",".join(str(r) for r, _ in errs)
            problem = f"at {describe(plan[i])}, rank {who}: " + "; ".join(texts)
        elif stalls:
            busy = [r for r in range(p) if r not in c]  # still inside the call: not waiting
            problem = (f"deadlock at {describe(plan[i])}: " + "; ".join(
                _stall_line(s) for _, s in stalls) + _recent(stalls[0][1]))
            if busy:
                problem += (f"; rank {','.join(map(str, busy))} never returned and was not "
                            "waiting on a message (an endless loop outside communication?)")
            elif _stall_hint(stalls):
                report.hint(_stall_hint(stalls))
        if problem:
            break
    imported = [e for e in ends.values() if e["end"] == "import"]
    if imported:
        problem = f"could not load the function: {imported[0]['error']}"
    elif problem is None and status is None:
        at = {r: max((x["begin"] for x in recs if "begin" in x), default=None)
              for r, recs in enumerate(records)}
        where = ", ".join(f"rank {r} in case {describe(plan[i])}" for r, i in at.items()
                          if i is not None)
        problem = (f"the job did not finish within {wall:.0f} s and was killed (a deadlock "
                   f"the per-call timeout did not see, or an endless loop); {where}")
    elif problem is None and any(e["end"] == "lost" for e in ends.values()):
        lost = [e for e in ends.values() if e["end"] == "lost"][0]
        problem = (f"at {describe(plan[lost['case']])}: a rank did not finish its call in "
                   f"time while the others had (an endless loop outside communication?)")
    elif problem is None and (len(done) < len(plan) or status != 0):
        problem = f"the job ended early (exit status {status}): {tail or 'no output'}"
    report.add(f"{name}: finishes", problem is None, problem or f"{len(plan)} cases",
               weight=3)
    # -- results
    wrong = []
    for i in done:
        bad = [(r, x["problem"]) for r, x in sorted(per_case[i].items()) if x["problem"]]
        key = (p, plan[i]["n"])
        (seen["wrong"] if bad else seen["right"]).add(key)
        if bad:
            wrong.append((i, bad))
    if not done:
        report.add(f"{name}: results", False, "not checked: no case finished", weight=4)
    elif wrong:
        i, bad = wrong[0]
        ns = sorted({plan[j]["n"] for j, _ in wrong})
        report.add(f"{name}: results", False,
                   f"{describe(plan[i])}: rank {bad[0][0]}: {bad[0][1]}"
                   f" (wrong at n = {', '.join(map(str, ns[:12]))})", weight=4)
    elif len(done) < len(plan):  # right so far is not right: every case must be
        report.add(f"{name}: results", False, f"only {len(done)} of {len(plan)} cases "
                   f"finished; the results of the others are unknown", weight=4)
    else:
        report.add(f"{name}: results", True, f"all {len(done)} cases right", weight=4)
    if problem or wrong:
        seen["failed_p"].add(p)
    else:
        seen["passed_p"].add(p)
    # -- identical
    split = [i for i in done if not any(x["problem"] for x in per_case[i].values())
             and len({x["digest"] for x in per_case[i].values()}) > 1]
    if not done:
        report.add(f"{name}: identical", False, "not checked: no case finished", 1, False)
    elif split:
        report.add(f"{name}: identical", False,
                   f"{describe(plan[split[0]])}: the ranks' results are right but differ in "
                   "their last bits; every rank must end with the same bits (add in the same "
                   "order everywhere, or compute each piece once and copy it), else the "
                   "replicas drift apart in training", 1, False)
    else:
        report.add(f"{name}: identical", True, "", 1, False)
    # -- messages
    right = [(plan[i], per_case[i]) for i in done
             if not any(x["problem"] for x in per_case[i].values())]
    msg = calls_problem([(plan[i], per_case[i]) for i in done], own) or unreceived(
        [(plan[i], stray[i]) for i in done]) or (
        messages(task, p, right) if right else
        f"not checked: no case {'gave the right answer' if done else 'finished'}")
    report.add(f"{name}: messages", msg is None, msg or pattern_note(task, p), 2, False)


def unreceived(done) -> str | None:
    """The first message a case left unreceived, as "rank 2 left 1 message from rank 1
    unreceived"; None when every message was received."""
    for case, by_rank in done:
        for r, msgs in sorted(by_rank.items()):
            if msgs:
                src, tag, nbytes = msgs[0]
                more = sum(1 for m in msgs if m[0] == src)
                return (f"{describe(case)}: rank {r} left {more} message{'s' * (more > 1)} "
                        f"from rank {src} unreceived (tag {tag}, {nbytes} bytes): every "
                        f"message sent must be received, or a later receive takes it")
    return None


def hints(report, seen, task=""):
    """Patterns across numbers of ranks and lengths, said once at the end."""
    failed, passed = seen["failed_p"], seen["passed_p"]
    pow2 = {p for p in failed | passed if p & (p - 1) == 0}
    if failed and not failed & pow2 and passed & pow2 - {1}:
        at = ", ".join(map(str, sorted(failed)))
        if task == "ring_allreduce":
            report.hint(f"right only when the number of ranks is a power of two (fails at "
                        f"p = {at}): a ring needs no power of two; look for a partner or a "
                        f"chunk computed with rank ^ k or p // 2 instead of (r + 1) mod p")
        else:
            report.hint(f"right only when the number of ranks is a power of two (fails at "
                        f"p = {at}): handle the ranks left over (e.g. fold them into a "
                        f"power of two first, or use a ring)")
    wrong, right = seen["wrong"], seen["right"]
    if not wrong:
        return
    if all(n % 2 for _, n in wrong) and not any(n % 2 for _, n in right if n > 1):
        report.hint("right only for even lengths: the last element of an odd-length buffer "
                    "is left out (check what n // 2 drops)")
    elif all(n % p for p, n in wrong) and not any(n % p for p, n in right if p > 1 and n > 0):
        report.hint("right only when the length divides evenly by the number of ranks: the "
                    "last n mod p elements are left out (give the first n mod p chunks one "
                    "element more, as minipar's chunk_counts does)")
    elif all(n < p for p, n in wrong):
        report.hint("wrong only when the buffer has fewer elements than ranks (some chunks "
                    "are empty)")


def grade_collective(task, target, ranks, timeout, report) -> None:
    seen = {"wrong": set(), "right": set(), "failed_p": set(), "passed_p": set()}
    module = target.rpartition(":")[0]
    own = module.startswith("minipar.") and not module.startswith("minipar.assignments")
    for p in ranks:
        wall = WALL_BASE + 3 * timeout + p
        records, status, tail = launch(task, target, p, timeout, wall)
        grade_p(task, p, records, status, tail, wall, report, seen, own)
    hints(report, seen, task)
