"""The child process that reads one query from a SQLite state database through the ADBC SQLite
driver and writes the rows to a file as an Arrow IPC stream, for its parent.

Run as ``python -m audience_sync.plan.sqlite_child DATABASE OUTPUT``; the rows go to the file
OUTPUT as an Arrow IPC stream. The request (the SQL, its positional
parameters and the column names to give the result) comes as one JSON document on stdin, so no
value appears on a command line. The driver links its own copy of SQLite, which must not share
a process with the application's: POSIX locks belong to a process, and two copies of SQLite in
one process release each other's (see :mod:`audience_sync.plan.state_io`). In a process of its
own it is just another reader, which SQLite's locking (WAL) supports.

Any failure ends the process with status 1 and nothing on stderr: the parent reports it as one
line. Only pyarrow and the driver are imported, to keep the start short.
"""

from __future__ import annotations

import json
import sys
from typing import Any

BATCH_ROWS = 65_536
BUSY_TIMEOUT_MS = 30_000


def stream_query(path: str, request: dict[str, Any], out: Any) -> None:
    import adbc_driver_manager
    import adbc_driver_sqlite
    import pyarrow as pa

    database = adbc_driver_sqlite.connect(path)
    try:
        connection = adbc_driver_manager.AdbcConnection(database)
        try:
            statement = adbc_driver_manager.AdbcStatement(connection)
            try:
                statement.set_sql_query(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                statement.execute_update()
                statement.set_options(
                    **{adbc_driver_sqlite.StatementOptions.BATCH_ROWS.value: str(BATCH_ROWS)}
                )
                statement.set_sql_query(request["sql"])
                params = request["params"]
                if params:
                    bound = pa.record_batch(
                        [pa.array([value]) for value in params],
                        names=[f"p{i}" for i in range(len(params))],
                    )
                    schema_capsule, array_capsule = bound.__arrow_c_array__()
                    statement.bind(array_capsule, schema_capsule)
                handle, _ = statement.execute_query()
                reader = pa.RecordBatchReader._import_from_c(handle.address)
                schema = pa.schema(
                    [
                        pa.field(name, field.type)
                        for name, field in zip(request["names"], reader.schema, strict=True)
                    ]
                )
                with pa.ipc.new_stream(out, schema) as writer:
                    for batch in reader:
                        writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
            finally:
                statement.close()
        finally:
            connection.close()
    finally:
        database.close()


def main() -> int:
    try:
        request = json.loads(sys.stdin.buffer.read())
        import pyarrow as pa

        with pa.OSFile(sys.argv[2], "wb") as out:
            stream_query(sys.argv[1], request, out)
    except BaseException:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
