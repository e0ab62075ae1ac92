#!/usr/bin/env python3
"""Self time per operator in a LibTorch profiler trace (train_bench --profile FILE).

  python3 bench/trace_summary.py /tmp/trace.json [--top 30]
"""
import argparse
import collections
import json

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("trace")
ap.add_argument("--top", type=int, default=30)
args = ap.parse_args()
data = json.load(open(args.trace))
events = [e for e in (data if isinstance(data, list) else data.get("traceEvents", [])) if e.get("ph") == "X"]
by_thread = collections.defaultdict(list)
for e in events:
    by_thread[e.get("tid")].append(e)
self_us, calls = collections.Counter(), collections.Counter()
for es in by_thread.values():
    es.sort(key=lambda e: (e["ts"], -e["dur"]))
    stack = []
    for e in es:
        while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
            stack.pop()
        if stack:
            self_us[stack[-1]["name"]] -= e["dur"]
        self_us[e["name"]] += e["dur"]
        calls[e["name"]] += 1
        stack.append(e)
print(f"total self time {sum(self_us.values()) / 1000:.1f} ms")
for name, us in self_us.most_common(args.top):
    print(f"{us / 1000:9.1f} ms {calls[name]:7d}  {name}")
