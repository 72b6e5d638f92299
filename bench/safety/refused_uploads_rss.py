"""Peak RSS of a server while 200 unauthenticated clients each upload a body
of N MiB at once (issue 13: authenticate before buffering a body).

    python3 bench/safety/refused_uploads_rss.py target/debug/qstash 18941 4

Starts `qstash dev` on 127.0.0.1:PORT with --max-body-bytes 8 MiB, prints
VmHWM/VmRSS (MB) before and after, and the status lines answered.
"""
import asyncio, shutil, subprocess, sys, time, os, re, tempfile
BIN=sys.argv[1]; PORT=int(sys.argv[2])
d=tempfile.mkdtemp()
p=subprocess.Popen([BIN,"dev","--port",str(PORT),"--data-dir",d,"--max-body-bytes",str(8*1024*1024)],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
time.sleep(1.5)
def hwm():
    s=open(f"/proc/{p.pid}/status").read()
    return int(re.search(r"VmHWM:\s+(\d+)",s).group(1))//1024, int(re.search(r"VmRSS:\s+(\d+)",s).group(1))//1024
body=b"x"*(int(sys.argv[3])*1024*1024)
async def one():
    r,w=await asyncio.open_connection("127.0.0.1",PORT)
    w.write(f"POST /v2/publish/http://127.0.0.1:9/x HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    await w.drain()
    w.write(body); await w.drain()
    line=await r.readline()
    w.close()
    return line[:12]
async def main():
    before=hwm()
    res=await asyncio.gather(*[one() for _ in range(200)])
    after=hwm()
    print("before MB(hwm,rss)",before,"after",after, "answers", set(res))
asyncio.run(main())
p.kill(); p.wait(); shutil.rmtree(d, ignore_errors=True)
