"""Runs SQL queries in DuckDB over Parquet files, for kinsight's differential test and
benchmark (crates/query/tests/it/differential.rs, crates/query/benches/queries.rs).

stdin: {"views": {"name": [parquet files...]},       # one view per name (union_by_name)
        "copy": {"file": "out.parquet", "from": "name",   # optional: write one file first,
                 "order_by": ["col", ...]},               #   its rows in this order if given
        "tables": {"name": "file.parquet"},             # optional: views over single files
        "queries": ["SQL", ...], "repeat": 1, "threads": 2}
stdout: [{"columns": [...], "rows": [[...]], "times_ms": [...]}, ...]
Timestamps print as 'YYYY-MM-DD HH:MM:SS.mmm' (UTC), like kinsight's results.
"""
import datetime
import decimal
import json
import sys
import time

import duckdb


def value(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(v, decimal.Decimal):
        return float(v)
    return v


def main():
    req = json.load(sys.stdin)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET threads = {int(req.get('threads', 2))}")
    for name, files in req.get("views", {}).items():
        quoted = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(
            f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet([{quoted}], union_by_name = true)'
        )
    copy = req.get("copy")
    if copy:
        order = ", ".join('"' + c + '"' for c in copy.get("order_by", []))
        order = f" ORDER BY {order}" if order else ""
        con.execute(
            f"""COPY (SELECT * FROM "{copy['from']}"{order}) TO '{copy['file']}'
                (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 131072)"""
        )
    for name, file in req.get("tables", {}).items():
        con.execute(f"""CREATE OR REPLACE VIEW "{name}" AS SELECT * FROM read_parquet('{file}')""")
    out = []
    for sql in req.get("queries", []):
        times = []
        result = None
        for _ in range(max(1, int(req.get("repeat", 1)))):
            t0 = time.perf_counter()
            cur = con.execute(sql)
            rows = cur.fetchall()
            times.append((time.perf_counter() - t0) * 1000.0)
            result = (cur.description, rows)
        desc, rows = result
        out.append(
            {
                "columns": [d[0] for d in desc],
                "rows": [[value(v) for v in r] for r in rows],
                "times_ms": times,
            }
        )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
