"""Devo's own Python sender (PyPI devo-sdk: Sender + SenderConfigSSL) sending a file of Devo
lines, for the line-rate comparison in scripts/bench. Prints one JSON line.

Each line of the file is `<14>{date} {hostname} {tag}: {json}`; it is split once, before the
clock starts, and sent with `Sender.send(tag, msg, date=..., hostname=...)`, which rebuilds the
same bytes (`<14>{date} {hostname} {tag}: {msg}\\n`). `close()` shuts the write side down and
waits for the relay's end of stream, as our sender does.
"""

import argparse
import json
import os
import resource
import time

from devo.sender import Sender, SenderConfigSSL


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lines", required=True)
    p.add_argument("--address", required=True, help="HOST:PORT of the relay")
    p.add_argument("--certs", required=True, help="directory with ca.pem, client.pem, client.key")
    p.add_argument("--server-name", default="localhost")
    a = p.parse_args()

    with open(a.lines, "rb") as f:
        raw = f.read().split(b"\n")
    events = []
    hostname = tag = None
    for line in raw:
        if not line:
            continue
        header, msg = line.split(b": ", 1)
        _, rest = header.split(b">", 1)
        day, clock, hostname, tag = rest.split(b" ")
        events.append((day + b" " + clock, msg))

    _, port = a.address.rsplit(":", 1)
    config = SenderConfigSSL(
        address=(a.server_name, int(port)),
        key=os.path.join(a.certs, "client.key"),
        cert=os.path.join(a.certs, "client.pem"),
        chain=os.path.join(a.certs, "ca.pem"),
        check_hostname=True,
    )
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    sender = Sender(config=config)
    for date, msg in events:
        sender.send(tag=tag, msg=msg, date=date, hostname=hostname)
    sender.close()
    seconds = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(json.dumps({
        "sender": "devo-sdk Sender (Python)",
        "lines": len(events),
        "seconds": seconds,
        "lines_per_second": len(events) / seconds,
        "cpu_seconds": cpu,
        "peak_rss_kib": cpu1.ru_maxrss,
    }))


if __name__ == "__main__":
    main()
