#!/usr/bin/python3
"""Run every test registered with meson (C programs and script tests, all speaking TAP) and
print one line per test, the output of failures, and a final line "N passed, N failed, N skipped".

A "check" is one TAP line: "ok ..." counts as passed, "not ok ..." as failed, and
"ok ... # SKIP reason" (or a plan "1..0 # SKIP reason") as skipped, counted apart. A program
that exits non-zero without a failing line, dies, times out, prints no TAP at all, prints no
plan ("1..N"), or runs a number of checks other than its plan counts as one more failure, so
a crash or an early exit can never pass silently.

    /usr/bin/python3 tools/run_tests.py [--build-dir build] [-k SUBSTRING]... [-v]
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

OK = re.compile(r"^ok\b")
NOT_OK = re.compile(r"^not ok\b")
PLAN = re.compile(r"^1\.\.(\d+)")
SKIP = re.compile(r"^ok\b.*#\s*SKIP\b", re.IGNORECASE)
PLAN_SKIP = re.compile(r"^1\.\.0\s*#\s*SKIP\b", re.IGNORECASE)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("-k", action="append", default=[], help="run only tests whose name contains this")
    ap.add_argument("-v", action="store_true", help="print every TAP line")
    a = ap.parse_args()

    out = subprocess.run(["meson", "introspect", "--tests", a.build_dir], capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    tests = json.loads(out.stdout)
    if a.k:
        tests = [t for t in tests if any(k in t["name"] for k in a.k)]

    env_base = dict(os.environ)
    # Open MPI refuses root by default; cluster users are not root, CI is.
    env_base.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env_base.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    # Tests pin BLAS threads; a test that wants more sets it itself.
    env_base.setdefault("OPENBLAS_NUM_THREADS", "1")

    passed = failed = skipped = 0
    t_all = time.time()
    for t in tests:
        env = dict(env_base)
        env.update(t.get("env") or {})
        timeout = max(int(t.get("timeout") or 0), 600)
        t0 = time.time()
        # its own session, so a timeout kills everything it started (mpirun ranks, daemons)
        p = subprocess.Popen(t["cmd"], cwd=t.get("workdir") or a.build_dir, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            so, se = p.communicate(timeout=timeout)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            so, se = p.communicate()
            rc = "timeout"
        dt = time.time() - t0
        lines = so.splitlines()
        n_skip = sum(1 for l in lines if SKIP.match(l))
        n_ok = sum(1 for l in lines if OK.match(l)) - n_skip
        n_bad = sum(1 for l in lines if NOT_OK.match(l))
        plan = [int(m.group(1)) for m in (PLAN.match(l) for l in lines) if m]
        whole_skip = any(PLAN_SKIP.match(l) for l in lines)
        n_run = n_ok + n_bad + n_skip
        extra = []
        if rc != 0 and n_bad == 0:
            extra.append(f"exited with {rc} without a failing check")
        if whole_skip:
            if n_run != 0:
                extra.append(f"plan 1..0 # SKIP but {n_run} checks ran")
            n_skip += 1  # the program as a whole, counted as one skipped check
        elif n_run == 0:
            extra.append("ran no check")
        if not plan:
            extra.append("printed no plan (1..N)")
        elif not whole_skip and plan[-1] != n_run:
            extra.append(f"plan 1..{plan[-1]} but {n_run} checks ran")
        fails = n_bad + (1 if extra else 0)
        passed += n_ok
        failed += fails
        skipped += n_skip
        status = "FAIL" if fails else ("SKIP" if n_ok == 0 and n_skip else "PASS")
        print(f"{status} {t['name']:<28} {n_ok:4d} ok {fails:3d} failed {n_skip:3d} skipped  {dt:6.1f}s", flush=True)
        if fails or n_skip or a.v:
            for l in lines:
                if a.v or NOT_OK.match(l) or SKIP.match(l) or l.startswith("#"):
                    print("    " + l)
            for e in extra:
                print("    " + e)
            if fails and se.strip():
                print("    stderr (last 30 lines):")
                for l in se.strip().splitlines()[-30:]:
                    print("      " + l)
    print(f"# {len(tests)} test programs in {time.time() - t_all:.0f}s")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
