#!/usr/bin/env python3
"""Counts Boost.Test cases from the XML reports of every suite and prints "N passed, N failed".

Each suite executable writes <build>/test-report-<suite>.xml. A suite whose report is missing
(it crashed before reporting) counts as one failed case. A suite run on several MPI ranks also
has test-report-<suite>-rank<r>.xml from ranks r > 0: a case counts once, as failed when it
failed on any rank. Exit status 1 when anything failed.
"""
import glob
import os
import sys
import xml.etree.ElementTree as ET

SUITES = ["autodiff", "kernels", "layers", "models", "saving", "training", "optim", "datasets", "losses", "metrics", "baseline_isa",
          "distributed", "distributed_failures"]


def main() -> int:
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    passed = failed = skipped = 0
    for suite in SUITES:
        path = os.path.join(build, f"test-report-{suite}.xml")
        if not os.path.exists(path):
            print(f"{suite}: no report (the suite crashed or did not run)")
            failed += 1
            continue
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            print(f"{suite}: unreadable report {path}: {e}")
            failed += 1
            continue
        # Cases that failed on another rank (by suite path and name).
        failed_elsewhere = set()
        for other in sorted(glob.glob(os.path.join(build, f"test-report-{suite}-rank*.xml"))):
            try:
                for case in ET.parse(other).getroot().iter("TestCase"):
                    if case.get("result", "") not in ("passed", "skipped"):
                        failed_elsewhere.add(case.get("name"))
            except ET.ParseError as e:
                print(f"{suite}: unreadable report {other}: {e}")
                failed += 1
        p = f = s = 0
        for case in root.iter("TestCase"):
            result = case.get("result", "")
            if case.get("name") in failed_elsewhere:
                print(f"{suite}: {case.get('name')} failed on a rank other than 0")
                result = "failed"
            if result == "passed":
                p += 1
            elif result == "skipped":
                s += 1
            else:
                f += 1
                print(f"{suite}: FAILED {case.get('name')}")
        print(f"{suite}: {p} passed, {f} failed, {s} skipped")
        passed, failed, skipped = passed + p, failed + f, skipped + s
    if skipped:
        print(f"{skipped} skipped")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
