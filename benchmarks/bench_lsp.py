"""The language server under edits, measured over stdio with a plain JSON-RPC client.

Reports, on a 2,000-line model file: time from `didChange` to the matching
`publishDiagnostics` (median and p95 over 50 edits, debounce set to 0 so it is excluded),
code-action latency (the first request after an edit, and the same request repeated), resident
memory after opening 20 such files, and the ratio of the edit-to-diagnostics median to
`ast.parse` of the same file.

Targets (issue 3): median within 5x `ast.parse`, code actions under 50 ms median, memory under 200 MB.
Run: python benchmarks/bench_lsp.py
"""

from __future__ import annotations

import ast
import json
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import model_file  # noqa: E402


class Client:
    """Just enough LSP client: requests, notifications, and a queue of what the server sends."""

    def __init__(self, command: list[str]):
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.inbox: queue.Queue = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            headers = {}
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            message = json.loads(stream.read(int(headers["content-length"])))
            if "id" in message and "method" in message:  # a request from the server: answer it
                self._send({"jsonrpc": "2.0", "id": message["id"], "result": None})
                continue
            self.inbox.put(message)

    def _send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        self.process.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: dict) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: dict, timeout: float = 60) -> dict:
        self.next_id += 1
        wanted = self.next_id
        self._send({"jsonrpc": "2.0", "id": wanted, "method": method, "params": params})
        return self.wait(lambda message: message.get("id") == wanted, timeout)["result"]

    def wait(self, predicate, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            message = self.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            if predicate(message):
                return message

    def resident_mb(self) -> float:
        """The server's resident memory plus its children's (analysis runs in a child process)."""
        return sum(_rss_mb(pid) for pid in _process_tree(self.process.pid))

    def close(self) -> None:
        try:
            self.request("shutdown", {}, timeout=10)
            self.notify("exit", {})
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()


def _process_tree(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found.extend(_process_tree(int(child)))
    return found


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def published(uri: str, version: int):
    return lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri and m["params"].get("version") == version


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> int:
    source = model_file(2000)
    parse_ms = statistics.median(_time(lambda: ast.parse(source)) for _ in range(15))
    client = Client([sys.executable, "-m", "llmarch_lsp"])
    client.request("initialize", {
        "processId": None, "rootUri": None,
        "capabilities": {"textDocument": {"publishDiagnostics": {"versionSupport": True}}},
        "initializationOptions": {"debounceMs": 0},
    })
    client.notify("initialized", {})

    uri = "file:///bench/model_0.py"
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 0, "text": source}})
    first = client.wait(published(uri, 0))
    latencies = []
    text = source
    for version in range(1, 51):
        text = text + f"# edit {version}\n"
        started = time.perf_counter()
        client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                 "contentChanges": [{"text": text}]})
        client.wait(published(uri, version))
        latencies.append((time.perf_counter() - started) * 1000)

    # Code actions: the first request after each edit (the fixes of the new text are validated,
    # a parse of the fixed document each), then the same request again, as an editor repeats it
    # while the cursor moves (the server keeps what it validated for that version).
    first_ms, repeat_ms = [], []
    for version in range(51, 71):
        text = text + f"# edit {version}\n"
        client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                 "contentChanges": [{"text": text}]})
        diagnostic = client.wait(published(uri, version))["params"]["diagnostics"][0]
        for timings in (first_ms, repeat_ms, repeat_ms):
            started = time.perf_counter()
            actions = client.request("textDocument/codeAction", {
                "textDocument": {"uri": uri}, "range": diagnostic["range"],
                "context": {"diagnostics": [diagnostic], "only": ["quickfix"]},
            })
            timings.append((time.perf_counter() - started) * 1000)
            assert actions, "no code actions returned"

    for number in range(1, 20):
        other = f"file:///bench/model_{number}.py"
        client.notify("textDocument/didOpen", {"textDocument": {"uri": other, "languageId": "python", "version": 0,
                                                                "text": source + f"# file {number}\n"}})
        client.wait(published(other, 0))
    memory = client.resident_mb()
    client.close()

    median = statistics.median(latencies)
    report = {
        "lines": source.count("\n") + 1,
        "ast_parse_ms": round(parse_ms, 2),
        "edit_to_diagnostics_median_ms": round(median, 2),
        "edit_to_diagnostics_p95_ms": round(percentile(latencies, 0.95), 2),
        "ratio_median_to_ast_parse": round(median / parse_ms, 2),
        "code_action_median_ms": round(statistics.median(first_ms), 2),
        "code_action_repeated_median_ms": round(statistics.median(repeat_ms), 2),
        "resident_memory_mb_after_20_files": round(memory, 1),
        "diagnostics_in_file": len(first["params"]["diagnostics"]),
    }
    print(json.dumps(report, indent=2))
    print(
        f"\nedit -> diagnostics: median {report['edit_to_diagnostics_median_ms']} ms, p95 {report['edit_to_diagnostics_p95_ms']} ms "
        f"= {report['ratio_median_to_ast_parse']}x ast.parse (target <= 5x); code action median "
        f"{report['code_action_median_ms']} ms on the first request of a version (target < 50), "
        f"{report['code_action_repeated_median_ms']} ms when asked again; "
        f"memory {report['resident_memory_mb_after_20_files']} MB (target < 200)"
    )
    ok = report["ratio_median_to_ast_parse"] <= 5 and report["code_action_median_ms"] < 50 and memory < 200
    return 0 if ok else 1


def _time(function) -> float:
    started = time.perf_counter()
    function()
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    raise SystemExit(main())
