"""Where a run's data was copied outside its tables (exports, gallery pages written elsewhere),
kept in OUT/_copies.json so that forget can reach every copy and write it again without what was
forgotten."""
from __future__ import annotations

import json

COPIES = "_copies.json"


def _copies_file(out: str):
    from facecluster.core.run_reader import filesystem_of

    filesystem, base = filesystem_of(out)
    return filesystem, f"{base}/{COPIES}"


def recorded(out: str, kind: str) -> list[dict]:
    """The copies of one kind ("exports", "reports") made of a run."""
    from pyarrow import fs

    filesystem, path = _copies_file(out)
    if filesystem.get_file_info(path).type != fs.FileType.File:
        return []
    with filesystem.open_input_stream(path) as stream:
        return json.loads(stream.read().decode("utf-8")).get(kind, [])


def record(out: str, kind: str, entry: dict) -> None:
    """Remember a copy. A run on read-only storage keeps no record: nothing can be forgotten
    there either, since forget rewrites the run's own tables."""
    from pyarrow import fs

    filesystem, path = _copies_file(out)
    every = {}
    if filesystem.get_file_info(path).type == fs.FileType.File:
        with filesystem.open_input_stream(path) as stream:
            every = json.loads(stream.read().decode("utf-8"))
    # one entry per folder: an export made again with other options replaces the one before
    every[kind] = [e for e in every.get(kind, []) if e != entry and not ("to" in entry and e.get("to") == entry["to"])] + [entry]
    try:
        with filesystem.open_output_stream(path) as stream:
            stream.write(json.dumps(every, indent=1).encode("utf-8"))
    except OSError:
        pass
