#!/usr/bin/env python3
"""Checks the Swift sources against two rules of the project's style: lines of at most 120
characters, and one statement per line (no `;` outside strings and comments). Prints each
offence as path:line and exits 1 when there is any. Usage: tools/style_check.py [DIR ...]"""

import pathlib
import sys

MAX = 120


def code_semicolons(line: str) -> bool:
    """True when the line has a `;` outside string literals and // comments."""
    in_string = False
    i = 0
    while i < len(line):
        c = line[i]
        if in_string:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif line.startswith("//", i):
            return False
        elif c == ";":
            return True
        i += 1
    return False


def main(dirs: list[str]) -> int:
    bad = 0
    for d in dirs or ["Sources"]:
        for path in sorted(pathlib.Path(d).rglob("*.swift")):
            in_block = False
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if len(line) > MAX:
                    print(f"{path}:{n}: {len(line)} characters (at most {MAX})")
                    bad += 1
                if line.count('"""') % 2 == 1:
                    in_block = not in_block
                    continue
                if not in_block and code_semicolons(line):
                    print(f"{path}:{n}: statements joined with ';'")
                    bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
