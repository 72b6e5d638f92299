"""300 connections that send a request head and never finish it, then one
normal request (issue 13: slow clients).

    python3 bench/safety/slow_heads.py target/debug/qstash 18951 [--max-connections 100]

Prints the normal request's latency and how many slow connections the
server closed within 20 s (after --header-read-timeout, 10 s by default).
"""
import asyncio, shutil, subprocess, sys, time, tempfile, socket
BIN=sys.argv[1]; PORT=int(sys.argv[2]); extra=sys.argv[3:]
d=tempfile.mkdtemp()
p=subprocess.Popen([BIN,"dev","--port",str(PORT),"--data-dir",d]+extra,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
time.sleep(1.5)
TOKEN="eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
async def normal():
    t=time.time()
    r,w=await asyncio.open_connection("127.0.0.1",PORT)
    w.write(f"GET /v2/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()); await w.drain()
    line=await asyncio.wait_for(r.readline(), 30)
    w.close()
    return round(time.time()-t,3), line[:12]
async def main():
    socks=[]
    for _ in range(300):
        r,w=await asyncio.open_connection("127.0.0.1",PORT)
        w.write(b"GET /v2/keys HTTP/1.1\r\nHost: x\r\n"); await w.drain()   # a head that never ends
        socks.append((r,w))
    print("normal request with 300 slow heads open:", await normal())
    t=time.time()
    closed=0
    async def wait_closed(r):
        try:
            d=await asyncio.wait_for(r.read(100), 20)
            return True
        except Exception:
            return False
    res=await asyncio.gather(*[wait_closed(r) for r,_ in socks])
    print("slow heads closed by the server within 20 s:", sum(res), "of 300, after", round(time.time()-t,1), "s")
asyncio.run(main())
p.kill(); p.wait(); shutil.rmtree(d, ignore_errors=True)
