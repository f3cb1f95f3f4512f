"""The table of scripts/kernel-report.sh: reads ptxas -v's and cuobjdump -sass's output for every kernel file and
architecture from a work directory, and writes (or checks) the part of docs/kernels.md between the markers.

usage: kernel_report.py WORK_DIR DOC CHECK(0|1) JSON_PATH_OR_EMPTY TOOLKIT_VERSION
"""
import glob
import json
import os
import re
import sys

BEGIN = "<!-- kernel-report:begin (scripts/kernel-report.sh writes this part) -->"
END = "<!-- kernel-report:end -->"
COUNTED = ["HMMA", "LDSM", "LDGSTS", "MUFU.EX2", "BAR"]
# Entries whose main loop is tensor-core work: the report gives their loop's HMMAs and instructions per HMMA.
LOOP_ENTRIES = re.compile(r"^(attention_forward|attention_backward_dq|attention_backward_dkdv|lora_)")


def ptxas_properties(text):
    """entry -> registers, stack, spill stores, spill loads, static shared bytes."""
    entries, current = {}, None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            current = m.group(1)
            entries[current] = {"registers": 0, "stack": 0, "spill_stores": 0, "spill_loads": 0, "smem": 0}
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            entries[current].update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
        m = re.search(r"Used (\d+) registers(?:, (\d+) bytes smem)?", line)
        if m:
            entries[current].update(registers=int(m.group(1)), smem=int(m.group(2) or 0))
    return entries


def sass_functions(text):
    """entry -> list of (address, opcode, operands) in program order (NOPs left out)."""
    functions, current = {}, None
    for line in text.splitlines():
        m = re.match(r"\s*Function : (\w+)", line)
        if m:
            current = functions.setdefault(m.group(1), [])
            continue
        m = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);", line)
        if m and current is not None and m.group(3) != "NOP":
            current.append((int(m.group(1), 16), m.group(3), m.group(4)))
    return functions


def counts(instructions):
    c = {name: 0 for name in COUNTED}
    for _, opcode, _ in instructions:
        for name in COUNTED:
            if opcode == name or opcode.startswith(name + "."):
                c[name] += 1
    c["instructions"] = len(instructions)
    return c


def main_loop(instructions):
    """(HMMAs, instructions) of the backward branch's range that holds the most HMMAs; (0, 0) without one."""
    best = (0, 0)
    for address, opcode, operands in instructions:
        if opcode != "BRA":
            continue
        m = re.search(r"0x([0-9a-f]+)", operands)
        if not m or int(m.group(1), 16) >= address:
            continue
        body = [i for i in instructions if int(m.group(1), 16) <= i[0] <= address]
        hmma = sum(1 for _, op, _ in body if op.startswith("HMMA"))
        if hmma > best[0] or (hmma == best[0] and hmma > 0 and len(body) < best[1]):
            best = (hmma, len(body))
    return best


def collect(work):
    rows = []
    for ptxas_file in sorted(glob.glob(os.path.join(work, "*.ptxas"))):
        name, arch, _ = os.path.basename(ptxas_file).rsplit(".", 2)
        with open(ptxas_file, encoding="utf-8") as f:
            properties = ptxas_properties(f.read())
        with open(ptxas_file[: -len(".ptxas")] + ".sass", encoding="utf-8") as f:
            functions = sass_functions(f.read())
        for entry in sorted(properties):
            code = functions.get(entry, [])
            row = {"file": name + ".cu", "entry": entry, "arch": arch, **properties[entry], **counts(code)}
            if LOOP_ENTRIES.match(entry):
                row["loop_hmma"], row["loop_instructions"] = main_loop(code)
            rows.append(row)
    rows.sort(key=lambda r: (r["file"], r["entry"], r["arch"]))
    return rows


def table(rows, toolkit):
    lines = [
        BEGIN,
        "",
        f"Assembled with {toolkit}. Stack and spills are local memory (off-chip); the counts are SASS instructions.",
        "",
        "| file | entry | arch | registers | stack | spill st/ld | smem | HMMA | LDSM | LDGSTS | EX2 | BAR | instructions | loop HMMA | instr/HMMA |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        loop = r.get("loop_hmma")
        per = f"{r['loop_instructions'] / loop:.1f}" if loop else ""
        lines.append(
            f"| {r['file']} | `{r['entry']}` | {r['arch']} | {r['registers']} | {r['stack']} | {r['spill_stores']}/{r['spill_loads']} | "
            f"{r['smem']} | {r['HMMA']} | {r['LDSM']} | {r['LDGSTS']} | {r['MUFU.EX2']} | {r['BAR']} | {r['instructions']} | "
            f"{'' if loop is None else loop} | {per} |"
        )
    lines += ["", END]
    return "\n".join(lines)


def main():
    work, doc, check, json_path, toolkit = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4], sys.argv[5]
    rows = collect(work)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)
        if not check:
            return  # the numbers only (tests): the document is left as it is
    with open(doc, encoding="utf-8") as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        sys.exit(f"error: {doc} has no kernel-report markers ({BEGIN} ... {END})")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    updated = text[:start] + table(rows, toolkit) + text[end:]
    if check:
        if updated != text:
            sys.exit(f"error: {doc}'s kernel table is stale: the kernels changed; run scripts/kernel-report.sh and commit {doc}")
        print(f"{doc}: kernel table current ({len(rows)} entries x architectures)")
        return
    with open(doc, "w", encoding="utf-8") as f:
        f.write(updated)
    print(f"{doc}: {len(rows)} rows written")


main()
