"""The Python side of ``benchmarks/gpu_check.sh``: record each part, then write the one results file.

    gpu_check.py record STEPS NAME RC T0 T1 LIMIT LOG -- CMD...   one JSON line per part
    gpu_check.py skip STEPS NAME REASON                           a part that cannot run here
    gpu_check.py anomalib-detectors                               the registered anomalib-* detectors
    gpu_check.py collect WORK STEPS RESULTS_DIR DEVICE T_START QUICK
        -> RESULTS_DIR/gpu_check_DEVICE.json (parts, their numbers, provenance) and the .md from it
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


def record(steps: str, name: str, rc: str, t0: str, t1: str, limit: str, log: str, *cmd: str) -> None:
    tail = Path(log).read_text(errors="replace")[-1500:] if Path(log).exists() else ""
    row = {"part": name, "rc": int(rc), "timed_out": int(rc) in (124, 137), "wall_s": round(float(t1) - float(t0), 1),
           "limit_s": int(limit), "command": " ".join(c for c in cmd if c != "--"), "log_tail": tail}
    with open(steps, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"[gpu_check] {name}: rc {rc}, {row['wall_s']} s", file=sys.stderr)


def skip(steps: str, name: str, reason: str) -> None:
    with open(steps, "a") as f:
        f.write(json.dumps({"part": name, "skipped": reason}) + "\n")


def anomalib_detectors() -> None:
    from benchbox import registry

    print(" ".join(p.name for p in registry.list_plugins("detectors") if p.name.startswith("anomalib-")))


def _results(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("**/result.json"))]


def _cell(res: dict) -> dict:
    m = res.get("metrics", {})
    keep = ("image_auroc", "pixel_auroc", "aupro", "gen_fid")
    return {"device": res.get("device"), **{k: m[k] for k in keep if m.get(k) is not None},
            "timings_s": res.get("timings"), "peak_cuda_mb": res.get("peak_cuda_mb")}


def numbers(part: str, work: Path) -> Any:
    """What a finished part produced, read from its own output files (None where it wrote nothing)."""
    if part == "default_cell" or part.startswith("anomalib-"):
        found = _results(work / "runs" / part)
        return _cell(found[0]) if found else None
    if part == "grid_ray":
        p = work / "grid.jsonl"
        cells = [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []
        return {"cells": len(cells), "ok": sum(c.get("status") == "ok" for c in cells),
                "devices": sorted({str(c.get("device")) for c in cells}),
                "image_auroc": [round(c["metrics"]["image_auroc"], 4) for c in cells
                                if c.get("metrics", {}).get("image_auroc") is not None]}
    if part == "latent_env":
        found = sorted((work / "latent_env").glob("*.json"))
        return [{k: v for k, v in r.items() if k != "rounds"} for r in json.loads(found[0].read_text())["rows"]] \
            if found else None
    if part == "backbone":
        p = work / "backbone.json"
        keys = ("variant", "image_size", "n_images", "images_per_s", "steady_images_per_s")
        return [{k: r.get(k) for k in keys} for r in json.loads(p.read_text())["rows"]] if p.exists() else None
    return None


def markdown(doc: dict) -> str:
    """The .md, written from the JSON document only."""
    prov = doc["provenance"]
    dev = prov["device"]
    lines = [f"# GPU readiness check ({doc['config']['device']}{', quick budgets' if doc['config']['quick'] else ''})",
             "", f"`{doc['config']['command']}` at commit {prov['commit']}, {doc['date']}; total {prov['wall_seconds']} s;"
             f" every part passed: **{doc['passed']}**. Machine: {dev.get('gpu') or dev.get('platform')}, "
             f"torch {prov['versions'].get('torch')}.", "", "| part | rc | wall s | numbers |", "|---|---:|---:|---|"]
    for r in doc["parts"]:
        if r.get("skipped"):
            lines.append(f"| {r['part']} | - | - | skipped: {r['skipped']} |")
        else:
            rc = f"{r['rc']}{' (timed out)' if r['timed_out'] else ''}"
            lines.append(f"| {r['part']} | {rc} | {r['wall_s']} | `{json.dumps(r.get('numbers'))[:600]}` |")
    return "\n".join(lines) + "\n"


def collect(work: str, steps: str, results: str, device: str, t_start: str, quick: str) -> None:
    from provenance import provenance

    work_p, out_dir = Path(work), Path(results)
    parts = [json.loads(line) for line in Path(steps).read_text().splitlines() if line.strip()]
    for r in parts:
        if not r.get("skipped"):
            r["numbers"] = numbers(r["part"], work_p)
    prov = provenance(device, time.perf_counter())
    prov["wall_seconds"] = round(time.time() - float(t_start), 1)
    quick_flag = " --quick" if quick == "1" else ""
    doc = {"config": {"command": f"benchmarks/gpu_check.sh --device {device}{quick_flag}", "device": device,
                      "quick": quick == "1"},
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "passed": all(r.get("skipped") or r["rc"] == 0 for r in parts), "parts": parts, "provenance": prov}
    out = out_dir / f"gpu_check_{device}.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, out)
    out.with_suffix(".md").write_text(markdown(json.loads(out.read_text())))
    print(f"[gpu_check] wrote {out} and {out.with_suffix('.md')}; every part passed: {doc['passed']}; "
          f"{prov['wall_seconds']} s", file=sys.stderr)
    sys.exit(0 if doc["passed"] else 1)


if __name__ == "__main__":
    cmd, *rest = sys.argv[1:] or [""]
    if cmd == "record":
        i = rest.index("--")
        record(*rest[:i], *rest[i + 1 :])
    elif cmd == "skip":
        skip(*rest)
    elif cmd == "anomalib-detectors":
        anomalib_detectors()
    elif cmd == "collect":
        collect(*rest)
    else:
        sys.exit(f"gpu_check.py: unknown command {cmd!r}; expected record, skip, anomalib-detectors or collect")
