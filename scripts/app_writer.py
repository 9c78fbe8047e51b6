#!/usr/bin/env python3
"""The consistency writer and its checker, for the job fixtures of scripts/seed_app.sh.

Writer: inserts parent + child pairs into the source, ONE transaction per pair, until
SIGTERM/SIGINT or --seconds, as fast as it can or at --rate pairs per second. Each pair's
child references its parent by a FOREIGN KEY; both rows are marked 'writer <tag> <n>'.
On stopping it finishes the pair in flight and prints one line on stdout:

    pairs=1234 seconds=10.0 rate=123.4 parent=invoice child=invoice_line tag=w4242

pairs counts the committed pairs: those whose COMMIT the server acknowledged, plus the pair
in flight if the session died after sending it and a new connection finds it committed.
Exit 0 when stopped by a signal or --seconds, 1 when the session failed (the line above is
still printed), 2 on a usage or connection error before the first pair.

    scripts/app_writer.py                       # app_src, until killed
    scripts/app_writer.py --db app_src2 --seconds 10 --rate 200 --ready-file /tmp/w.ready

Checker: given a copy of the two tables (a SQLite file, or a MySQL database), counts the
parents, the children, the writer's parents and children, the children whose parent is
missing (orphans), and the writer's parents without their child; prints

    parents=5123 children=10124 writer_parents=123 writer_children=123 orphans=0 childless_writer_parents=0 consistent=yes

and exits 0 when consistent (no orphan, as many writer parents as writer children, each
with its child), 1 when not, 2 on a usage or connection error.

    scripts/app_writer.py --check --sqlite /tmp/app.db
    scripts/app_writer.py --check --db app_copy [--min-pairs 1]
    scripts/app_writer.py --print-check-sql --schema shop

Tables (--schema auto finds them: invoice -> shop, loan -> library):
    shop     parent invoice (invoice_id, mark: note), child invoice_line (invoice_id, mark:
             description). The parent sorts BEFORE the child.
    library  parent loan (loan_id, mark: remark), child due_notice (loan_id, mark: message).
             The child sorts BEFORE the parent.
--parent-table / --child-table give other names (a target_table rename) to the checker.

Server (writer, and checker without --sqlite): MYSQL_HOST (127.0.0.1), MYSQL_PORT (3306),
MYSQL_USER (root), MYSQL_PWD (read by the client itself), MYSQL_OPTS (further options of
the mariadb client, e.g. --ssl-ca=PATH). Uses the `mariadb` command-line client and the
Python standard library only.
"""

import argparse
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

SCHEMAS = {
    "shop": dict(parent="invoice", pk="invoice_id", pmark="note",
                 child="invoice_line", fk="invoice_id", cmark="description"),
    "library": dict(parent="loan", pk="loan_id", pmark="remark",
                    child="due_notice", fk="loan_id", cmark="message"),
}
MARK = "writer "  # every writer row's mark starts so; no seeded row's does


def client_argv(db, extra=()):
    exe = shutil.which("mariadb") or shutil.which("mysql")
    if not exe:
        sys.exit("app_writer: the mariadb client is not installed")
    return [exe, "-h", os.environ.get("MYSQL_HOST", "127.0.0.1"),
            "-P", os.environ.get("MYSQL_PORT", "3306"),
            "-u", os.environ.get("MYSQL_USER", "root"),
            *shlex.split(os.environ.get("MYSQL_OPTS", "")),
            "--default-character-set=utf8mb4", "--batch", "--skip-column-names",
            *extra, db]


def mysql_query(db, sql):
    """Rows of one or more statements, as lists of strings; exits 2 on failure."""
    res = subprocess.run(client_argv(db), input=sql, capture_output=True, text=True)
    if res.returncode != 0:
        print(f"app_writer: {db}: {res.stderr.strip()}", file=sys.stderr)
        sys.exit(2)
    return [line.split("\t") for line in res.stdout.splitlines()]


def detect_schema(tables):
    for name, s in SCHEMAS.items():
        if s["parent"] in tables and s["child"] in tables:
            return name
    return None


def check_sql(s, parent, child):
    p, c = f"`{parent}`", f"`{child}`"
    pk, fk, pm, cm = (f"`{s[k]}`" for k in ("pk", "fk", "pmark", "cmark"))
    # Backquotes and LIKE work in both MySQL and SQLite.
    return (
        "SELECT\n"
        f"  (SELECT COUNT(*) FROM {p}) AS parents,\n"
        f"  (SELECT COUNT(*) FROM {c}) AS children,\n"
        f"  (SELECT COUNT(*) FROM {p} WHERE {pm} LIKE '{MARK}%') AS writer_parents,\n"
        f"  (SELECT COUNT(*) FROM {c} WHERE {cm} LIKE '{MARK}%') AS writer_children,\n"
        f"  (SELECT COUNT(*) FROM {c} ch LEFT JOIN {p} pa ON pa.{pk} = ch.{fk}"
        f" WHERE pa.{pk} IS NULL) AS orphans,\n"
        f"  (SELECT COUNT(*) FROM {p} pa WHERE pa.{pm} LIKE '{MARK}%' AND NOT EXISTS"
        f" (SELECT 1 FROM {c} ch WHERE ch.{fk} = pa.{pk})) AS childless_writer_parents"
    )


NAMES = ["parents", "children", "writer_parents", "writer_children", "orphans",
         "childless_writer_parents"]


def check(args):
    if args.sqlite:
        if not os.path.exists(args.sqlite):
            print(f"app_writer: no such file: {args.sqlite}", file=sys.stderr)
            return 2
        con = sqlite3.connect(f"file:{args.sqlite}?mode=ro", uri=True)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    else:
        con = None
        tables = {r[0] for r in mysql_query(args.db, "SELECT TABLE_NAME FROM information_schema.TABLES"
                                            " WHERE TABLE_SCHEMA = DATABASE()")}
    schema = args.schema if args.schema != "auto" else detect_schema(tables)
    if schema is None:
        print("app_writer: neither invoice/invoice_line nor loan/due_notice here; "
              "give --schema and --parent-table/--child-table", file=sys.stderr)
        return 2
    s = SCHEMAS[schema]
    parent, child = args.parent_table or s["parent"], args.child_table or s["child"]
    missing = [t for t in (parent, child) if t not in tables]
    if missing:
        print(f"app_writer: missing table(s): {', '.join(missing)}", file=sys.stderr)
        return 2
    sql = check_sql(s, parent, child)
    if con is not None:
        values = [int(v) for v in con.execute(sql).fetchone()]
    else:
        values = [int(v) for v in mysql_query(args.db, sql + ";")[0]]
    r = dict(zip(NAMES, values))
    ok = (r["orphans"] == 0 and r["childless_writer_parents"] == 0
          and r["writer_parents"] == r["writer_children"]
          and r["writer_parents"] >= args.min_pairs)
    print(" ".join(f"{k}={v}" for k, v in r.items()) + f" consistent={'yes' if ok else 'no'}")
    return 0 if ok else 1


def ids(db, table, column, limit=1000):
    rows = mysql_query(db, f"SELECT `{column}` FROM `{table}` ORDER BY `{column}` LIMIT {limit};")
    if not rows:
        sys.exit(f"app_writer: {db}.{table} is empty: seed it first (scripts/seed_app.sh)")
    return [int(r[0]) for r in rows]


def pair_sql(schema, refs, n, tag):
    mark = f"'{MARK}{tag} {n}'"
    price = f"{9.99 + n % 7:.2f}"
    pick = lambda name: refs[name][n % len(refs[name])]  # noqa: E731
    if schema == "shop":
        return (
            "START TRANSACTION;\n"
            "INSERT INTO invoice (customer_id, store_id, issued_at, status, total, note) VALUES"
            f" ({pick('customer')}, {pick('store')}, NOW(3), 'issued', {price}, {mark});\n"
            "INSERT INTO invoice_line (invoice_id, line_no, film_id, quantity, unit_price, description)"
            f" VALUES (LAST_INSERT_ID(), 1, {pick('film')}, 1, {price}, {mark});\n"
            f"COMMIT;\nSELECT {n};\n")
    member = pick("member")
    return (
        "START TRANSACTION;\n"
        "INSERT INTO loan (copy_id, member_id, loaned_at, due_date, fee, remark) VALUES"
        f" ({pick('copy')}, {member}, NOW(3), CURDATE() + INTERVAL 21 DAY, 0.00, {mark});\n"
        "INSERT INTO due_notice (loan_id, member_id, sent_at, channel, message) VALUES"
        f" (LAST_INSERT_ID(), {member}, NOW(3), '{('email', 'sms', 'letter')[n % 3]}', {mark});\n"
        f"COMMIT;\nSELECT {n};\n")


def write(args):
    tables = {r[0] for r in mysql_query(args.db, "SELECT TABLE_NAME FROM information_schema.TABLES"
                                        " WHERE TABLE_SCHEMA = DATABASE()")}
    schema = args.schema if args.schema != "auto" else detect_schema(tables)
    if schema is None:
        print(f"app_writer: {args.db} holds neither invoice/invoice_line nor loan/due_notice",
              file=sys.stderr)
        return 2
    if schema == "shop":
        refs = {"customer": ids(args.db, "customer", "customer_id"),
                "store": ids(args.db, "store", "store_id"),
                "film": ids(args.db, "film", "film_id")}
    else:
        refs = {"copy": ids(args.db, "copy", "copy_id"),
                "member": ids(args.db, "member", "member_id")}
    s = SCHEMAS[schema]
    tag = args.tag or f"w{os.getpid()}"

    stop = []
    def on_signal(signum, _frame):
        stop.append(signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    # One client session, fed one pair at a time; its own session so that a Ctrl-C at the
    # terminal reaches only this process, which then ends the pair in flight cleanly.
    proc = subprocess.Popen(client_argv(args.db, ["--unbuffered"]), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            bufsize=1, start_new_session=True)
    start = time.monotonic()
    deadline = start + args.seconds if args.seconds else None
    committed, error, n = 0, None, 0
    while not stop:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        if args.rate:
            due = start + n / args.rate
            if due > now:
                time.sleep(min(due - now, 0.2))
                continue
        n += 1
        try:
            proc.stdin.write(pair_sql(schema, refs, n, tag))
            proc.stdin.flush()
        except BrokenPipeError:
            error = "the client session ended"
            break
        line = proc.stdout.readline()
        if line.strip() != str(n):
            error = f"the session ended before pair {n}'s COMMIT was acknowledged"
            break
        committed = n
        if committed == 1 and args.ready_file:
            with open(args.ready_file, "w") as f:
                f.write(f"{os.getpid()}\n")
    elapsed = time.monotonic() - start
    try:
        proc.stdin.close()
    except BrokenPipeError:
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    stderr = proc.stderr.read().strip().splitlines()
    if error and n > committed:
        # The session died with pair n sent: its COMMIT may or may not have happened. Ask.
        res = subprocess.run(client_argv(args.db), capture_output=True, text=True,
                             input=f"SELECT COUNT(*) FROM `{s['parent']}`"
                                   f" WHERE `{s['pmark']}` = '{MARK}{tag} {n}';")
        if res.returncode == 0 and res.stdout.strip() in ("0", "1"):
            found = res.stdout.strip() == "1"
            committed += found
            error += f"; it was {'committed' if found else 'rolled back'}, asked afterwards"
        else:
            error += f" (asking failed, so pairs may be {committed + 1})"
    print(f"pairs={committed} seconds={elapsed:.1f} rate={committed / max(elapsed, 1e-9):.1f}"
          f" parent={s['parent']} child={s['child']} tag={tag}", flush=True)
    if error:
        print(f"app_writer: {error}" + (f" ({stderr[-1]})" if stderr else ""), file=sys.stderr)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--db", default="app_src", help="the MySQL database (default app_src)")
    ap.add_argument("--schema", choices=["auto", *SCHEMAS], default="auto")
    ap.add_argument("--seconds", type=float, help="stop after this many seconds")
    ap.add_argument("--rate", type=float, help="pairs per second (default: as fast as it can)")
    ap.add_argument("--tag", help="put in each row's mark (default w<pid>)")
    ap.add_argument("--ready-file", help="written once the first pair is committed")
    ap.add_argument("--check", action="store_true", help="check a copy instead of writing")
    ap.add_argument("--sqlite", help="with --check: the SQLite file holding the copy")
    ap.add_argument("--parent-table", help="with --check: the parent table's name in the copy")
    ap.add_argument("--child-table", help="with --check: the child table's name in the copy")
    ap.add_argument("--min-pairs", type=int, default=0,
                    help="with --check: also require at least this many writer pairs")
    ap.add_argument("--print-check-sql", action="store_true",
                    help="print the checker's query (for --schema, default shop) and exit")
    args = ap.parse_args()
    if args.print_check_sql:
        s = SCHEMAS["shop" if args.schema == "auto" else args.schema]
        print(check_sql(s, args.parent_table or s["parent"], args.child_table or s["child"]) + ";")
        return 0
    if args.sqlite and not args.check:
        ap.error("--sqlite goes with --check")
    return check(args) if args.check else write(args)


if __name__ == "__main__":
    sys.exit(main())
