"""DuckDB with its mysql and sqlite extensions (loaded from their PyPI wheels).
Usage: duckdb_copy.py sqlite|mysql ROWS_DB OUT"""
import os
import pathlib
import sys

import duckdb
import duckdb_extension_mysql_scanner as mx
import duckdb_extension_sqlite_scanner as sx

target, db, out = sys.argv[1], sys.argv[2], sys.argv[3]


def ext(mod, name):
    return str(next(pathlib.Path(mod.__file__).parent.rglob(f"{name}.duckdb_extension")))


con = duckdb.connect()
con.execute(f"LOAD '{ext(mx, 'mysql_scanner')}'")
con.execute(f"ATTACH 'host=127.0.0.1 port=3306 user=root database={db}' AS src (TYPE mysql, READ_ONLY)")
if target == "sqlite":
    con.execute(f"LOAD '{ext(sx, 'sqlite_scanner')}'")
    con.execute(f"ATTACH '{out}' AS dst (TYPE sqlite)")
    con.execute("DROP TABLE IF EXISTS dst.vehicles_stock")
    con.execute("CREATE TABLE dst.vehicles_stock AS SELECT * FROM src.vehicles_stock")
else:
    # DUCKDB_MYSQL_HOST/PORT point it through the latency proxy for the WAN row.
    host = os.environ.get("DUCKDB_MYSQL_HOST", "localhost")
    port = os.environ.get("DUCKDB_MYSQL_PORT", "3307")
    con.execute(
        f"ATTACH 'host={host} port={port} user=bench password=bench database=bench_duckdb "
        f"ssl_mode=VERIFY_IDENTITY ssl_ca={out}' AS dst (TYPE mysql)"
    )
    con.execute("DROP TABLE IF EXISTS dst.vehicles_stock")
    con.execute("CREATE TABLE dst.vehicles_stock AS SELECT * FROM src.vehicles_stock")
print("done", file=sys.stderr)
