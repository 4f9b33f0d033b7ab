#!/usr/bin/env python3
"""A tiny SMTP sink that plays "the internet" for the e2e test.

Accepts every recipient except local parts starting with "bad" (550 5.1.1, like a remote
server rejecting unknown users) and "dmarc" (550 5.7.26, like a big provider refusing mail that
fails the sender domain's DMARC policy). Each accepted message is appended as one JSON line
(sender, recipients) to the file given as the second argument.
Usage: sink.py PORT OUTFILE
"""
import asyncio
import json
import sys


async def session(reader, writer):
    out = sys.argv[2]
    w = lambda s: writer.write((s + "\r\n").encode())
    w("220 sink.e2e.test ESMTP")
    sender, rcpts = None, []
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), 60)
            if not line:
                break
            cmd = line.decode("utf-8", "replace").strip()
            up = cmd.upper()
            if up.startswith("EHLO") or up.startswith("HELO"):
                w("250-sink.e2e.test")
                w("250 8BITMIME")
            elif up.startswith("MAIL FROM:"):
                sender, rcpts = cmd[10:].strip().split(" ")[0].strip("<>"), []
                w("250 2.1.0 Ok")
            elif up.startswith("RCPT TO:"):
                addr = cmd[8:].strip().split(" ")[0].strip("<>")
                if addr.lower().startswith("bad"):
                    w("550 5.1.1 <%s>: Recipient address rejected: User unknown" % addr)
                elif addr.lower().startswith("dmarc"):
                    dom = (sender or "").rpartition("@")[2]
                    w("550 5.7.26 Unauthenticated email from %s is not accepted due to domain's DMARC policy" % dom)
                else:
                    rcpts.append(addr)
                    w("250 2.1.5 Ok")
            elif up == "DATA":
                w("354 End data with <CR><LF>.<CR><LF>")
                await writer.drain()
                while True:
                    l = await asyncio.wait_for(reader.readline(), 60)
                    if not l or l in (b".\r\n", b".\n"):
                        break
                with open(out, "a") as f:
                    f.write(json.dumps({"from": sender, "to": rcpts}) + "\n")
                w("250 2.0.0 Ok: queued")
            elif up == "RSET":
                sender, rcpts = None, []
                w("250 2.0.0 Ok")
            elif up == "QUIT":
                w("221 2.0.0 Bye")
                await writer.drain()
                break
            else:
                w("250 2.0.0 Ok")
            await writer.drain()
    except (asyncio.TimeoutError, ConnectionError):
        pass
    writer.close()


async def main():
    srv = await asyncio.start_server(session, "127.0.0.1", int(sys.argv[1]))
    async with srv:
        await srv.serve_forever()


asyncio.run(main())
