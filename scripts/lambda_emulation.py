"""Lambda's side of a fault run (scripts/fault_run.py): warm execution environments of a
function binary under a local Runtime API, replaced when an invocation crashes one or runs
past the function's timeout; retries due later; a count of the work in flight, so the run
knows when everything is quiet."""

import heapq
import json
import queue
import threading
import time
import uuid

from timer_lateness import WarmFunction


class Failed(Exception):
    """An invocation that did not answer: a crash or the function's timeout."""


class Environment(WarmFunction):
    """A warm execution environment; an invocation that crashes it or runs past the function's
    timeout ends it (Lambda then starts a new one)."""

    def call(self, event, timeout):
        rid = str(uuid.uuid4())
        self.events.put((rid, event))
        deadline = time.time() + timeout
        with self.done:
            while rid not in self.answers:
                if self.proc.poll() is not None:
                    raise Failed(f"the process exited ({self.proc.returncode})")
                if time.time() > deadline:
                    raise Failed(f"timed out after {timeout} s")
                self.done.wait(0.5)
            return self.answers.pop(rid)


class Function:
    """A function with `size` environments, invoked synchronously."""

    def __init__(self, binary, env, size, timeout, on_line, stats):
        self.binary, self.env, self.timeout, self.on_line, self.stats = binary, env, timeout, on_line, stats
        self.name = binary.name
        self.free = queue.Queue()
        self.all = []
        for _ in range(size):
            self._add()

    def _add(self):
        e = Environment(self.binary, self.env, self.on_line)
        self.all.append(e)
        self.free.put(e)

    def invoke(self, event):
        """(ok, answer): the function's answer, or its error."""
        env = self.free.get()
        try:
            ok, body = env.call(event, self.timeout)
        except Failed as e:
            self.stats[f"{self.name}: environment ended ({str(e).split(' (')[0]})"] += 1
            env.close()
            self.all.remove(env)
            self._add()
            return False, str(e)
        self.free.put(env)
        if not ok:
            self.stats[f"{self.name}: invocation failed"] += 1
            return False, body
        return True, (json.loads(body) if body else None)

    def close(self):
        for e in self.all:
            e.close()


class Scheduler:
    """Runs callables later (retries after their delay)."""

    def __init__(self):
        self.heap, self.cv, self.n = [], threading.Condition(), 0
        threading.Thread(target=self._run, daemon=True).start()

    def after(self, delay, fn):
        with self.cv:
            self.n += 1
            heapq.heappush(self.heap, (time.time() + delay, self.n, fn))
            self.cv.notify()

    def pending(self):
        with self.cv:
            return len(self.heap)

    def _run(self):
        while True:
            with self.cv:
                while not self.heap or self.heap[0][0] > time.time():
                    self.cv.wait(0.1 if self.heap else 1)
                _, _, fn = heapq.heappop(self.heap)
            fn()


class Work:
    """Counts what is in flight, so the run knows when the system is quiet."""

    def __init__(self):
        self.lock, self.n = threading.Lock(), 0

    def __enter__(self):
        with self.lock:
            self.n += 1

    def __exit__(self, *_):
        with self.lock:
            self.n -= 1

    def busy(self):
        with self.lock:
            return self.n
