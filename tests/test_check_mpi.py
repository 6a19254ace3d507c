"""The grader on collectives: minipar's own pass; each planted mistake fails, with a message
that says what is wrong. Every run starts mpiexec (through ``minipar.check``), so the
numbers of ranks are chosen per case: the fewest that show the mistake."""

import json
import subprocess
import sys
import textwrap

import pytest

from minipar.grading import collective_checks
from minipar.grading.exercises import grade_exercise

pytestmark = pytest.mark.mpi

PLANTED = textwrap.dedent('''
    import numpy as np


    def forgets_own(comm, buf):
        """Rank 0 adds the others' buffers but not its own."""
        if comm.rank == 0:
            total, tmp = np.zeros_like(buf), np.empty_like(buf)
            for src in range(1, comm.size):
                comm.recv(tmp, src)
                total += tmp
            if comm.size > 1:
                buf[:] = total
            for dst in range(1, comm.size):
                comm.send(buf, dst)
        else:
            comm.send(buf, 0)
            comm.recv(buf, 0)


    def pow2_only(comm, buf):
        """Recursive doubling with no fix-up for the ranks left over."""
        tmp, k = np.empty_like(buf), 1
        while k < comm.size:
            peer = comm.rank ^ k
            comm.sendrecv(buf, peer, tmp, peer)
            buf += tmp
            k <<= 1


    def tail_dropped(comm, buf):
        """A ring over chunks of n // p elements: the last n mod p are never summed."""
        p, r = comm.size, comm.rank
        m = buf.size // p
        chunks = [buf[i * m:(i + 1) * m] for i in range(p)]
        tmp = np.empty(m, buf.dtype)
        for s in range(p - 1):
            comm.sendrecv(chunks[(r - s) % p], (r + 1) % p, tmp, (r - 1) % p)
            chunks[(r - s - 1) % p] += tmp
        for s in range(p - 1):
            comm.sendrecv(chunks[(r - s + 1) % p], (r + 1) % p, chunks[(r - s) % p],
                          (r - 1) % p)


    def pairs(comm, buf):
        """Works on pairs of elements: the last element of an odd length is dropped."""
        p, r, h = comm.size, comm.rank, buf.size // 2
        tmp, total = np.empty(2 * h, buf.dtype), buf[:2 * h].copy()
        for k in range(1, p):
            comm.sendrecv(buf[:2 * h], (r + k) % p, tmp, (r - k) % p)
            total += tmp
        buf[:2 * h] = total


    def recv_first(comm, buf):
        """Every rank waits for its left neighbour before sending: nobody sends."""
        p, r = comm.size, comm.rank
        tmp, total = np.empty_like(buf), buf.copy()
        for _ in range(p - 1):
            comm.recv(tmp, (r - 1) % p)
            comm.send(buf, (r + 1) % p)
            total += tmp
        buf[:] = total


    def send_first(comm, buf):
        """Sends before it receives: MPI buffers small messages, so only large ones hang."""
        p, r = comm.size, comm.rank
        tmp, total, cur = np.empty_like(buf), buf.copy(), buf.copy()
        for _ in range(p - 1):
            comm.send(cur, (r + 1) % p)
            comm.recv(tmp, (r - 1) % p)
            total += tmp
            cur[:] = tmp
        buf[:] = total


    def spins(comm, buf):
        """Rank 1 loops forever without communicating; rank 0 waits for it."""
        while comm.rank == 1:
            pass
        if comm.rank == 0 and comm.size > 1:
            comm.recv(buf, 1)


    def spins_everywhere(comm, buf):
        while True:
            pass


    def secret_mpi(comm, buf):
        comm.allreduce(buf)


    def secret_mpi4py(comm, buf):
        from mpi4py import MPI
        MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, buf)


    def private_helpers(comm, buf):
        """The library's own ring, through its private helpers."""
        from minipar.comm.collectives import (_ring_allgather, _ring_reduce_scatter,
                                              chunk_counts, offsets)
        counts = chunk_counts(buf.size, comm.size)
        offs = offsets(counts)
        with comm.collective("allreduce", "ring", buf):
            if comm.size > 1:
                _ring_reduce_scatter(comm, buf, counts, offs, comm.size - 1, 0)
                _ring_allgather(comm, buf, counts, offs, comm.size - 1, 0)


    def decoy_ring(comm, buf):
        """A ring's messages for show; the sum itself from mpi4py's Allreduce."""
        from mpi4py import MPI
        p, r = comm.size, comm.rank
        tmp = np.empty_like(buf)
        for _ in range(2 * (p - 1)):
            comm.sendrecv(buf, (r + 1) % p, tmp, (r - 1) % p)
        MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, buf)


    def raw_comm(comm, buf):
        """The sum from the raw MPI communicator inside minipar's."""
        from mpi4py import MPI
        comm._c.Allreduce(MPI.IN_PLACE, buf)


    def forgets_a_receive(comm, buf):
        """Every rank sends to every other, but rank 0 never receives from the last rank."""
        p, r = comm.size, comm.rank
        tmp, total = np.empty_like(buf), buf.copy()
        reqs = [comm.isend(buf, (r + k) % p) for k in range(1, p)]
        for k in range(1, p):
            src = (r - k) % p
            if r == 0 and src == p - 1:
                continue
            comm.recv(tmp, src)
            total += tmp
        comm.waitall(reqs)
        buf[:] = total


    def returns_copy(comm, buf):
        """Sums right, but into a new array: the buffer itself is left as it was."""
        parts, tmp = [], np.empty_like(buf)
        for src in range(comm.size):
            if src == comm.rank:
                parts.append(buf.copy())
            else:
                comm.sendrecv(buf, src, tmp, src)
                parts.append(tmp.copy())
        return np.sum(parts, axis=0).astype(buf.dtype)


    def skips_short(comm, buf):
        """Right, except that a buffer shorter than the number of ranks is left alone."""
        if buf.size < comm.size:
            return
        tmp, total = np.empty_like(buf), buf.copy()
        for k in range(1, comm.size):
            comm.sendrecv(buf, (comm.rank + k) % comm.size, tmp, (comm.rank - k) % comm.size)
            total += tmp
        buf[:] = total


    def relative_tree(comm, buf, root):
        """A binomial tree on ranks relative to the root, never turned back into real ranks."""
        p, rel = comm.size, (comm.rank - root) % comm.size
        k = 1
        while k < p:
            if rel < k and rel + k < p:
                comm.send(buf, rel + k)
            elif k <= rel < 2 * k:
                comm.recv(buf, rel - k)
            k <<= 1


    def flat_broadcast(comm, buf, root):
        if comm.rank == root:
            for dst in range(comm.size):
                if dst != root:
                    comm.send(buf, dst)
        else:
            comm.recv(buf, root)
''')


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    path = tmp_path_factory.mktemp("planted") / "planted.py"
    path.write_text(PLANTED)
    return str(path)


def failed(report):
    return [c for c in report.checks if not c.ok]


@pytest.mark.parametrize("task, target", [
    ("ring_allreduce", "minipar.comm.collectives:allreduce_ring"),
    ("tree_broadcast", "minipar.comm.collectives:broadcast_tree"),
])
def test_references_pass(task, target):
    report = grade_exercise(task, target, [1, 2, 3, 4])
    assert report.ok, report.format()
    assert report.total == 16


@pytest.mark.parametrize("algo", ["naive", "tree", "rd"])
def test_every_minipar_allreduce_passes_the_generic_task(algo):
    report = grade_exercise("allreduce", f"minipar.comm.collectives:allreduce_{algo}", [3])
    assert report.ok, report.format()


@pytest.mark.parametrize("fn, task, ranks, check, words, hint", [
    ("forgets_own", "allreduce", [3], "3 ranks: results", "expected", None),
    ("pow2_only", "allreduce", [2, 3, 4], "3 ranks: finishes", "rank that does not exist",
     "power of two"),
    ("tail_dropped", "allreduce", [3], "3 ranks: results", "wrong at n =", "divides evenly"),
    ("pairs", "allreduce", [2, 4], "2 ranks: results", "wrong at n = 1, 3", "even lengths"),
    ("recv_first", "allreduce", [2], "2 ranks: finishes", "deadlock", "waiting to receive"),
    ("send_first", "allreduce", [2], "2 ranks: finishes", "deadlock at n=100003",
     "none is receiving"),
    ("spins", "allreduce", [2], "2 ranks: finishes", "never returned", None),
    ("secret_mpi", "allreduce", [2], "2 ranks: messages", "called MPI's own allreduce", None),
    ("secret_mpi4py", "allreduce", [2], "2 ranks: finishes", "reaches MPI directly", None),
    ("private_helpers", "ring_allreduce", [3], "3 ranks: finishes",
     "calls minipar's own collectives._ring_reduce_scatter", None),
    ("decoy_ring", "ring_allreduce", [3], "3 ranks: finishes",
     "reaches MPI directly (mpi4py's MPI.COMM_WORLD)", None),
    ("raw_comm", "allreduce", [2], "2 ranks: finishes", "reaches into the communicator", None),
    ("returns_copy", "allreduce", [2], "2 ranks: results", "work in place", None),
    ("flat_broadcast", "tree_broadcast", [4], "4 ranks: messages", "binomial tree", None),
    ("skips_short", "allreduce", [3], "3 ranks: results", "wrong at n = 1, 2",
     "fewer elements than ranks"),
    ("relative_tree", "tree_broadcast", [2], "2 ranks: finishes", "deadlock",
     "waited in recv with itself"),
    ("pow2_only", "ring_allreduce", [2, 3], "3 ranks: finishes", "does not exist",
     "a ring needs no power of two"),
])
def test_planted_mistakes_fail_with_a_message(planted, fn, task, ranks, check, words, hint):
    # A short deadline where a hang is the point; a generous one elsewhere, so that a busy
    # machine cannot turn a slow but correct wait into a deadlock.
    hangs = fn in ("recv_first", "send_first", "spins", "pow2_only", "relative_tree")
    report = grade_exercise(task, f"{planted}:{fn}", ranks, timeout=1.0 if hangs else 10.0)
    bad = {c.name: c.message for c in failed(report)}
    assert check in bad, report.format()
    assert words in bad[check], report.format()
    if hint:
        assert any(hint in h for h in report.hints), report.format()
    assert not report.ok


def test_partial_results_never_pass_and_earn_no_style_points(planted):
    # send_first finishes the small cases, then deadlocks at n = 100003 (MPI stops buffering)
    report = grade_exercise("allreduce", f"{planted}:send_first", [2], timeout=1.0)
    bad = {c.name: c.message for c in failed(report)}
    assert "only" in bad["2 ranks: results"] and "cases finished" in bad["2 ranks: results"]
    assert not report.gate_open and report.score == 0.0, report.format()


def test_a_message_left_unreceived_is_named_and_stays_in_its_case(planted):
    report = grade_exercise("allreduce", f"{planted}:forgets_a_receive", [3], timeout=2.0)
    bad = {c.name: c.message for c in failed(report)}
    assert "rank 0 left 1 message from rank 2 unreceived" in bad["3 ranks: messages"], \
        report.format()
    assert "MPI_ERROR" not in report.format() and "MPI_Status" not in report.format()


def test_a_ring_task_rejects_another_algorithm():
    report = grade_exercise("ring_allreduce", "minipar.comm.collectives:allreduce_tree", [3])
    bad = {c.name: c.message for c in failed(report)}
    assert list(bad) == ["3 ranks: messages"], report.format()
    assert "right neighbour" in bad["3 ranks: messages"]


def test_a_job_that_never_ends_is_killed(planted, monkeypatch):
    monkeypatch.setattr(collective_checks, "WALL_BASE", 1.0)
    report = grade_exercise("allreduce", f"{planted}:spins_everywhere", [2], timeout=0.5)
    assert "was killed" in report.checks[0].message, report.format()


def test_cli_json_and_exit_status(planted, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "minipar.check", "allreduce",
                           f"{planted}:secret_mpi", "--ranks", "2", "--json"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["task"] == "allreduce" and out["total"] == 4 and out["passed"] == 3
    assert out["score"] == 0.8 and not out["ok"]  # right answers, but not by messages
    assert [c["ok"] for c in out["checks"]] == [True, True, True, False]


def test_hidden_cases_catch_what_the_standard_ones_miss(tmp_path):
    (tmp_path / "sly.py").write_text(textwrap.dedent('''
        import numpy as np


        def wrong_at_77(comm, buf):
            """A right sum, except for a length the standard cases do not try."""
            tmp, total = np.empty_like(buf), buf.copy()
            for k in range(1, comm.size):
                comm.sendrecv(buf, (comm.rank + k) % comm.size, tmp,
                              (comm.rank - k) % comm.size)
                total += tmp
            buf[:] = total + (buf.size == 77)
    '''))
    cases = tmp_path / "hidden.json"
    cases.write_text(json.dumps({"lengths": [77], "seeds": [5]}))
    base = [sys.executable, "-m", "minipar.check", "allreduce", "sly:wrong_at_77", "--ranks",
            "2", "--json"]
    open_run = subprocess.run(base, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    hidden = subprocess.run(base + ["--cases", str(cases)], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert json.loads(open_run.stdout)["ok"], open_run.stdout
    report = json.loads(hidden.stdout)
    results = [c for c in report["checks"] if c["name"] == "2 ranks: results"][0]
    assert not results["ok"] and "n=77" in results["message"], results
    bad = subprocess.run(base + ["--cases", str(tmp_path / "nope.json")], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert bad.returncode == 2 and "--cases" in bad.stderr


def test_a_class_is_graded_folder_by_folder_in_parallel(tmp_path):
    good = ("import numpy as np\n\n\ndef allreduce(comm, buf):\n"
            "    tmp, total = np.empty_like(buf), buf.copy()\n"
            "    for k in range(1, comm.size):\n"
            "        comm.sendrecv(buf, (comm.rank + k) % comm.size, tmp,\n"
            "                      (comm.rank - k) % comm.size)\n"
            "        total += tmp\n"
            "    buf[:] = total\n")
    subs = tmp_path / "subs"
    for name, code in (("alice", good), ("bob", "def allreduce(comm, buf):\n"
                                               "    comm.allreduce(buf)\n"), ("carol", "")):
        (subs / name).mkdir(parents=True)
        (subs / name / "mine.py").write_text(code)
    proc = subprocess.run([sys.executable, "-m", "minipar.check", "allreduce", "mine:allreduce",
                           "--submissions", str(subs), "--ranks", "2", "--jobs", "2"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    lines = proc.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == ["alice", "bob", "carol"], proc.stdout
    assert "100.0%" in lines[0] and "80.0%" in lines[1] and "0.0%" in lines[2]
    report = json.loads((subs / "alice" / "grade-allreduce.json").read_text())
    assert report["ok"] and proc.returncode == 1  # bob and carol did not pass
    carol = json.loads((subs / "carol" / "grade-allreduce.json").read_text())
    assert "has no function 'allreduce'" in carol["checks"][0]["message"]
