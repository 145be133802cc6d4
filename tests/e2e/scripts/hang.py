"""Makes a few steps, then blocks forever on a lock (a deadlock) with the CPU idle."""

import threading
import time

import cpuwise

with cpuwise.watch() as w:
    for _ in range(3):
        time.sleep(0.02)
        w.step()
    lock = threading.Lock()
    lock.acquire()
    lock.acquire()  # never returns
