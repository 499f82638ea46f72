"""The floor for `health_scale.py`: a bare asyncio prober, stdlib only, as small as a probe can be.

For each port on 127.0.0.1 it sends the three requests of an ollamactl probe (`/api/version`,
`/api/tags`, `/api/ps`) at once, each on its own connection (`Connection: close`), parses every
200 answer as JSON, and prints how many instances answered all three: `{"healthy": N}`.
No caps, no deadline, no error words: what ollamactl does on top of this is its overhead.

    python bench/bare_prober.py PORT...
"""

import asyncio
import json
import sys


async def get(port: int, path: str) -> object:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return json.loads(body) if b" 200 " in head.split(b"\r\n", 1)[0] else None


async def probe_all(ports: list[int]) -> int:
    async def one(port: int) -> bool:
        answers = await asyncio.gather(*(get(port, path) for path in ("/api/version", "/api/tags", "/api/ps")))
        return all(answer is not None for answer in answers)

    return sum(await asyncio.gather(*(one(port) for port in ports)))


if __name__ == "__main__":
    print(json.dumps({"healthy": asyncio.run(probe_all([int(port) for port in sys.argv[1:]]))}))
