"""Generate the checked-in JSON Schema of the frames: `python -m schemas.generate`.

A test regenerates it in memory and fails when the checked-in files drift from the structs.
Descriptions are normalised (`schemas.normalise`), so the files do not depend on how a msgspec
release formats docstrings.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from schemas.dashboard import DashboardClientFrame, DashboardHubFrame
from schemas.frames import API_VERSION, ClientFrame, HubFrame
from schemas.normalise import dump

GENERATED = Path(__file__).parent / "generated"


def frame_schemas() -> dict[str, bytes]:
    out = {}
    for name, union in (("client-frames", ClientFrame), ("hub-frames", HubFrame),
                        ("dashboard-client-frames", DashboardClientFrame), ("dashboard-hub-frames", DashboardHubFrame)):
        schema = msgspec.json.schema(union)
        schema["$id"] = f"https://repowire.dev/schemas/{API_VERSION}/{name}.json"
        schema["title"] = f"{API_VERSION} {name.replace('-', ' ')}"
        out[f"{name}.schema.json"] = dump(schema)
    return out


if __name__ == "__main__":
    GENERATED.mkdir(exist_ok=True)
    for filename, data in frame_schemas().items():
        (GENERATED / filename).write_bytes(data)
        print(f"wrote {GENERATED / filename}")
