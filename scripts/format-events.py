#!/usr/bin/env python3
"""Render vminsightd JSON events (console lines "EV <json>") and demo notes ("DEMO ...")
as a readable live view. Anything else on the console is skipped."""
import json
import sys

SYMBOL = {"process-started": "+", "process-seen": "=", "process-exited": "-", "process-exec": ">",
          "process-renamed": "~"}

for raw in sys.stdin:
    line = raw.rstrip("\r\n")
    if line.startswith("DEMO "):
        print(f"  [lab] {line[5:]}")
        continue
    at = line.find("EV {")
    if at < 0:
        continue
    try:
        ev = json.loads(line[at + 3:])
    except json.JSONDecodeError:
        continue
    action = ev.get("event", {}).get("action", "?")
    vm = ev.get("vm", {}).get("name", "?")
    p = ev.get("process")
    if p and p.get("kernel_thread") and "--all" not in sys.argv:
        continue  # kernel threads: shown with --all
    if ev.get("event", {}).get("kind") == "alert":
        r = ev.get("rule", {})
        print(f"  {vm}  ALERT [{r.get('priority', '?')}] {r.get('name', '?')}: {ev.get('message', '')}")
        resp = ev.get("response")
        if resp:  # what the rule's action did (deny by the module, pause, dump, or monitor)
            print(f"  {vm}        -> {resp.get('action')}: {resp.get('result')}")
        continue
    sc = ev.get("syscall")
    if sc:
        args = sc.get("args", {})
        what = args.get("path") or args.get("addr") or ""
        if isinstance(what, dict):
            what = f"{what.get('address', '')}:{what.get('port', '')}"
        if "child_pid" in sc:
            what = f"child {sc['child_pid']}"
        if "exit_code" in sc:
            what = f"exit code {sc['exit_code']}"
        result = sc.get("error") or ("" if sc.get("ret") is None else f"= {sc['ret']}")
        mark = "!" if sc.get("denied") else "s"
        label = f"{sc['name']} DENIED" if sc.get("denied") else sc["name"]
        print(f"  {vm}  {mark} {label:<16} pid {p.get('pid', '?'):>5}  {p.get('name', '?'):<16} "
              f"{what} {result}")
        continue
    if p:
        print(f"  {vm}  {SYMBOL.get(action, '?')} {action:<16} pid {p['pid']:>5}  ppid {p.get('ppid', '?'):>5}  "
              f"cr3 {p['cr3']:<10} {p['name']}")
    elif action == "guest-kernel-found":
        prof = ev.get("vminsight", {}).get("profile", {})
        ms = prof.get("discovery_ms")
        took = f" in {ms:.0f} ms" if isinstance(ms, (int, float)) else ""
        print(f"  {vm}  * guest kernel understood from its {prof.get('source', '?')}{took} "
              f"(init_task {prof.get('init_task', '?')}, BTF {prof.get('btf_bytes', '?')} bytes)")
    elif action == "vm-monitor-stats":
        s = ev.get("vminsight", {})
        print(f"  {vm}  stats: {s.get('records_read')} records read (CR3 {s.get('cr3_mode')}, "
              f"syscalls {s.get('syscall_mode')}: {s.get('syscalls_trapped')} trapped, "
              f"{s.get('syscalls_denied')} denied), {s.get('records_lost_kernel')} lost, "
              f"{s.get('scans')} task-list walks")
    else:
        print(f"  {vm}  * {action} {ev.get('event', {}).get('reason', '')}")
