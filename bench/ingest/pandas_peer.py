#!/usr/bin/env python3
"""The pandas way to do what `segrec ingest` does: read the CSV, drop exact
duplicate rows, factorise the user and item ids. Prints one JSON line."""
import json
import resource
import sys
import time

import pandas as pd

path = sys.argv[1]
t0 = time.perf_counter()
df = pd.read_csv(path, dtype={"user_id": str, "item_id": str, "category": str, "event": str},
                 on_bad_lines="skip")
t1 = time.perf_counter()
df = df.drop_duplicates()
t2 = time.perf_counter()
users, user_index = pd.factorize(df["user_id"], sort=True)
items, item_index = pd.factorize(df["item_id"], sort=True)
t3 = time.perf_counter()
print(json.dumps({
    "rows": int(len(df)), "users": int(len(user_index)), "items": int(len(item_index)),
    "read_s": t1 - t0, "dedup_s": t2 - t1, "factorize_s": t3 - t2, "total_s": t3 - t0,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
