"""The original tool's stack: pandas read_sql over SQLAlchemy + mysql-connector-python,
then to_sql(if_exists="replace"). Usage: pandas_copy.py sqlite|mysql ROWS_DB OUT"""
import sys

import pandas as pd
from sqlalchemy import create_engine

target, db, out = sys.argv[1], sys.argv[2], sys.argv[3]
src = create_engine(f"mysql+mysqlconnector://root@127.0.0.1:3306/{db}")
df = pd.read_sql("SELECT * FROM vehicles_stock", src)
if target == "sqlite":
    dst = create_engine(f"sqlite:///{out}")
    df.to_sql("vehicles_stock", dst, if_exists="replace", index=False)
else:
    # out = the TLS server's CA file; the chunked variant, since the default one fails here.
    dst = create_engine(
        "mysql+mysqlconnector://bench:bench@localhost:3307/bench_pandas?charset=utf8mb4",
        connect_args={"ssl_ca": out, "ssl_verify_cert": True},
    )
    df.to_sql("vehicles_stock", dst, if_exists="replace", index=False, chunksize=20000)
print(len(df), file=sys.stderr)
