"""The benchmark's data: an audience of N members and a changed snapshot, and DuckDB's diff of them.

Members are written in a random order (as exports arrive), about 2% with a capitalised first
letter or surrounding blanks so normalisation has real work to do.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

DOMAINS = ("example.com", "mail.example.org", "shop.example.net", "example.co.uk", "inbox.test")
WRITE_BATCH = 200_000


@dataclass(frozen=True)
class Workload:
    members: int
    churn: float
    old_csv: Path
    new_csv: Path
    contacts_csv: Path
    """Every address of either snapshot, subscribed on the Listrak list."""
    added: int
    removed: int


def email(member_id: int) -> str:
    return f"member{member_id:09d}@{DOMAINS[member_id % len(DOMAINS)]}"


def _raw(member_id: int) -> str:
    address = email(member_id)
    if member_id % 97 == 0:
        return address.capitalize()
    if member_id % 89 == 0:
        return f" {address} "
    return address


def _write(path: Path, ids: np.ndarray, *, raw: bool) -> None:
    tmp = path.with_suffix(".tmp")
    render = _raw if raw else email
    with tmp.open("w", encoding="utf-8") as out:
        out.write("email\n")
        for start in range(0, len(ids), WRITE_BATCH):
            batch = ids[start : start + WRITE_BATCH].tolist()
            out.write("".join(f"{render(i)}\n" for i in batch))
    tmp.replace(path)


def prepare(workdir: Path, members: int, churn: float, *, seed: int = 7) -> Workload:
    """Write (or reuse) the old and new member files and the Listrak contact list."""
    changed = round(members * churn)
    folder = workdir / f"data-{members}-{changed}-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    workload = Workload(
        members=members,
        churn=churn,
        old_csv=folder / "old.csv",
        new_csv=folder / "new.csv",
        contacts_csv=folder / "contacts.csv",
        added=changed,
        removed=changed,
    )
    if all(p.exists() for p in (workload.old_csv, workload.new_csv, workload.contacts_csv)):
        return workload
    rng = np.random.default_rng(seed)
    ids = rng.permutation(members + changed)
    old, added = ids[:members], ids[members:]
    removed_positions = rng.choice(members, size=changed, replace=False)
    kept = np.delete(old, removed_positions)
    new = np.concatenate([kept, added])
    rng.shuffle(new)
    _write(workload.old_csv, old, raw=True)
    _write(workload.new_csv, new, raw=True)
    _write(workload.contacts_csv, ids, raw=False)
    return workload


def contact_batches_from(path: Path, size: int) -> Iterator[list[str]]:
    """The addresses of a one-column file with a header, ``size`` at a time."""
    with path.open(encoding="utf-8") as lines:
        next(lines)
        batch: list[str] = []
        for line in lines:
            batch.append(line.rstrip("\n"))
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch


@dataclass(frozen=True)
class DuckDbDiff:
    seconds: float
    added: int
    removed: int


def duckdb_diff(workload: Workload) -> DuckDbDiff:
    """The reference: an in-memory DuckDB reads both files, canonicalises the addresses the
    simple way (trim, lowercase) and anti-joins the two member sets in both directions."""
    started = time.perf_counter()
    con = duckdb.connect(":memory:")
    try:
        for name, path in (("old", workload.old_csv), ("new", workload.new_csv)):
            con.execute(
                f"CREATE TABLE {name} AS SELECT DISTINCT lower(trim(email)) AS email "
                "FROM read_csv(?, header = true, columns = {'email': 'VARCHAR'})",
                [str(path)],
            )
        con.execute("CREATE TABLE added AS SELECT email FROM new ANTI JOIN old USING (email)")
        con.execute("CREATE TABLE removed AS SELECT email FROM old ANTI JOIN new USING (email)")
        added = con.execute("SELECT count(*) FROM added").fetchone()
        removed = con.execute("SELECT count(*) FROM removed").fetchone()
    finally:
        con.close()
    assert added is not None
    assert removed is not None
    return DuckDbDiff(time.perf_counter() - started, int(added[0]), int(removed[0]))
